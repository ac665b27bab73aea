-- Origins a company's frontend may send users back to after Salt Edge Connect, in addition
-- to the service-wide allow-list (server.return_to_origins).
ALTER TABLE companies ADD COLUMN return_to_origins text[] NOT NULL DEFAULT '{}';
