// A bookkeeping frontend's use of banksync, typed from the committed OpenAPI document
// (docs/openapi.json → src/generated/api.d.ts by openapi-typescript; calls by openapi-fetch).
//
// It links a bank, waits for its first sync, pages the statement lines, follows the change
// feed until it is caught up, and reviews a line flagged as a look-alike. Every step checks
// what it got; any surprise exits non-zero.
//
//   BASE=http://127.0.0.1:8080 TOKEN=… PROVIDER=demobank_gb node dist/main.js
import createClient from "openapi-fetch";
import type { components, paths } from "./generated/api.js";

type Schemas = components["schemas"];
type StatementLine = Schemas["StatementLine"];
type ChangeEntry = Schemas["ChangeEntry"];

const base = need("BASE");
const api = createClient<paths>({
  baseUrl: base,
  headers: { Authorization: `Bearer ${need("TOKEN")}` },
});

function need(name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`set ${name}`);
  return v;
}

function check(ok: boolean, what: string): asserts ok {
  if (!ok) throw new Error(`check failed: ${what}`);
}

/** The change feed's vocabularies are enums in the document: this switch is exhaustive,
 *  and `tsc --strict` fails here the day a kind is added or the document loses the enum. */
function describe(entry: ChangeEntry): string {
  const what = ((): string => {
    switch (entry.entity) {
      case "line":
        return `line ${entry.id}`;
      case "statement":
        return `statement ${entry.id}`;
      default: {
        const unknown: never = entry.entity;
        return unknown;
      }
    }
  })();
  switch (entry.op) {
    case "added":
      return `${what} added`;
    case "modified":
      return `${what} changed`;
    case "removed":
      return `${what} left the books`;
    default: {
      const unknown: never = entry.op;
      return unknown;
    }
  }
}

function consentAdvice(c: Schemas["Connection"]): string {
  switch (c.consent_status) {
    case "none":
    case "valid":
      return "consent in order";
    case "expiring":
      return "ask the user to reconnect soon (update credentials)";
    case "expired":
    case "revoked":
      return "the bank no longer shares data: reconnect";
    default: {
      const unknown: never = c.consent_status;
      return unknown;
    }
  }
}

async function sleep(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

/** 1. Link a bank: banksync answers with Salt Edge Connect's URL for the user. */
async function link(provider: string): Promise<string> {
  const stamp = Date.now().toString(36);
  const { data, error, response } = await api.POST("/api/v1/connections", {
    body: {
      provider_code: provider,
      phone: "+44 20 7946 0000",
      email: `books+ts-${stamp}@example.com`,
      return_to: `${base}/healthz`,
      allow_second_connection: true,
    },
  });
  check(data !== undefined, `link_bank answered ${response.status}: ${JSON.stringify(error)}`);
  return data.connect_url;
}

/** The user's part, in the simulator's Connect page (a browser would show it). */
async function completeConnect(url: string): Promise<void> {
  const form = (fields: Record<string, string>) =>
    fetch(url, { method: "POST", body: new URLSearchParams(fields), redirect: "manual" });
  let page = await form({ login: "username", password: "secret", sms: "123456", consent: "on" });
  if (page.status === 200) page = await form({ sms: "123456" }); // an SMS step
  check(page.status === 303, `the Connect page ended with ${page.status}`);
}

/** 2. Wait for the callback and the first sync of the new connection. */
async function waitForSync(known: Set<string>): Promise<Schemas["Connection"]> {
  for (let i = 0; i < 300; i++) {
    const { data } = await api.GET("/api/v1/connections");
    const fresh = (data ?? []).find((c) => !known.has(c.id));
    if (fresh?.last_sync?.status === "succeeded") return fresh;
    if (fresh?.last_sync?.status === "failed") throw new Error(`sync failed: ${fresh.last_sync.error_message}`);
    if (fresh?.error) throw new Error(`the link failed: ${fresh.error.class}: ${fresh.error.message}`);
    await sleep(200);
  }
  throw new Error("no successful sync within 60 s");
}

/** 3. Every booked line of a journal, a page at a time. */
async function allLines(journalId: string): Promise<StatementLine[]> {
  const lines: StatementLine[] = [];
  let cursor: string | undefined;
  for (;;) {
    const { data, error } = await api.GET("/api/v1/statement-lines", {
      params: { query: { journal_id: journalId, limit: 7, ...(cursor ? { cursor } : {}) } },
    });
    check(data !== undefined, `list_statement_lines: ${JSON.stringify(error)}`);
    lines.push(...data.items);
    if (!data.next_cursor) return lines;
    cursor = data.next_cursor;
  }
}

/** 4. The change feed from `cursor` until caught up; returns the entries and where to go on. */
async function follow(journalId: string, cursor?: string): Promise<[ChangeEntry[], string]> {
  const entries: ChangeEntry[] = [];
  for (;;) {
    const { data, error } = await api.GET("/api/v1/changes", {
      params: { query: { journal_id: journalId, limit: 50, ...(cursor ? { cursor } : {}) } },
    });
    check(data !== undefined, `list_changes: ${JSON.stringify(error)}`);
    entries.push(...data.changes);
    cursor = data.next_cursor;
    if (data.caught_up) return [entries, cursor];
    if (!data.has_more) await sleep(200);
  }
}

async function main(): Promise<void> {
  const before = await api.GET("/api/v1/connections");
  const known = new Set((before.data ?? []).map((c) => c.id));
  // Another institution than the demo's own link: Salt Edge refuses the same credentials
  // twice for one provider (ConnectionDuplicated).
  const url = await link(process.env.PROVIDER ?? "demobank_gb");
  console.log(`link_bank: Connect URL ${url}`);
  await completeConnect(url);
  const conn = await waitForSync(known);
  console.log(`connection ${conn.id} (${conn.provider_name}): ${conn.status}; ${consentAdvice(conn)}`);
  const account = conn.accounts[0];
  check(account !== undefined, "the linked connection has an account");
  const journal = account.journal_id;

  const lines = await allLines(journal);
  check(lines.length > 0, "the first sync stored lines");
  check(new Set(lines.map((l) => l.id)).size === lines.length, "no line twice across pages");
  console.log(`list_statement_lines: ${lines.length} lines in pages of 7`);

  const [entries, cursor] = await follow(journal);
  const fed = new Set(entries.filter((e) => e.entity === "line").map((e) => e.id));
  check(lines.every((l) => fed.has(l.id)), "the change feed holds every line");
  console.log(`list_changes: ${entries.length} entries, e.g. ${entries.slice(0, 2).map(describe).join("; ")}`);

  const flagged = lines.find((l) => l.duplicate_review === "flagged");
  check(flagged !== undefined, "the demo bank's data has a look-alike to review");
  const { data: reviewed, error } = await api.POST("/api/v1/statement-lines/{id}/dismiss-duplicate", {
    params: { path: { id: flagged.id } },
  });
  check(reviewed?.duplicate_review === "dismissed", `dismiss_duplicate_line: ${JSON.stringify(error)}`);
  const [after] = await follow(journal, cursor);
  const change = after.find((e) => e.entity === "line" && e.id === flagged.id);
  check(change?.op === "modified", "the review reached the change feed as a modification");
  console.log(`dismiss_duplicate_line: line ${flagged.id} reviewed; the feed says: ${describe(change)}`);
  console.log("typescript example: every step checked");
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
