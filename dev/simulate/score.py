"""The score of a simulated run, from the receivers' side (what on-call would have seen).

Pure: notifications (as the sink logged them, with the run second they arrived) and the
scenario's incidents in, the score out. A pager group is one Alertmanager group key on the
pager receiver. A group matches an incident when one of its alerts names the incident's target
(the collector, the account, the queue, the backend) and its first page arrives between the
incident's start and its end plus the allowance (threshold plus `for:`, scaled, plus the
pipeline's slack). An incident that expects a page expects exactly one pager group (one incident,
one page), holding at least the alerts its `page_alerts` names."""

# The alert each kind is meant to raise: its `for:` bounds the time to the page.
ALERTS = {
    "collector_stops": ["PoloCollectorStale", "PoloCollectorFreshnessBudgetBurn"],
    "collector_fails": ["PoloCollectorFailing", "PoloCollectorKeysStale", "PoloCollectorPartial", "PoloCollectorFreshnessBudgetBurn"],
    "collector_silent": ["PoloCollectorOutputCollapsed"],
    "account_loses_access": ["PoloAccountNoAccess"],
    "dlq_fills": ["PoloDeadLetterQueueNotEmpty"],
    "clickhouse_down": ["PoloExporterSourceDown"],
    "exporter_restart": ["PoloExporterDown"],
    "late_rows": [],
}
# Production time from the incident's start until the alert's condition holds, by kind, in units
# of the collector's interval: stale 2 intervals (staleness_factor 2) after the last success,
# which may complete up to 0.3 interval after the start (a run lasts 10-30 % of its interval);
# three failed runs in a row, each up to 1.1 intervals apart, the third completing 0.3 later.
INTERVALS_TO_CONDITION = {"collector_stops": 2.4, "collector_fails": 3.6, "collector_silent": 3.6}


def names_target(inc, alert, account_ids):
    labels = alert.get("labels", {})
    kind = inc["kind"]
    if kind in ("collector_stops", "collector_fails", "collector_silent", "late_rows"):
        return labels.get("collector") == inc["collector"]
    if kind == "account_loses_access":
        return labels.get("aws_account_id") == account_ids[inc["account"]]
    if kind == "dlq_fills":
        return labels.get("queue") == inc["queue"]
    if kind == "clickhouse_down":
        name = labels.get("alertname", "")
        return name.startswith("PoloClickHouse") or (name == "PoloExporterSourceDown" and labels.get("source") in ("collector_runs", "accounts", "clickhouse_system"))
    if kind == "exporter_restart":
        return labels.get("alertname") in ("PoloExporterDown", "PoloExporterSourceDown")
    return False


def groups(notifications, receiver):
    """{group key: {"first": run second of its first firing notification, "alerts": [...],
    "resolved": [run seconds of resolved notifications]}} for one receiver."""
    out = {}
    for n in notifications:
        if n["receiver"] != receiver:
            continue
        body = n["notification"]
        g = out.setdefault(body.get("groupKey", ""), {"first": None, "alerts": [], "resolved": [], "firing": []})
        if body.get("status") == "firing":
            if g["first"] is None:
                g["first"] = n["at_s"]
            g["firing"].append(n["at_s"])
        else:
            g["resolved"].append(n["at_s"])
        g["alerts"].extend(body.get("alerts", []))
    return {k: g for k, g in out.items() if g["first"] is not None}


def allowance(inc, sc, for_seconds, slack_s):
    """Run seconds after the incident's end within which its alert may still arrive, and the
    bound on its time to page (threshold plus `for:`, scaled, plus slack)."""
    scale = sc["time_scale"]
    interval = sc["collectors"].get(inc.get("collector") or "", max(sc["collectors"].values()))
    condition = INTERVALS_TO_CONDITION.get(inc["kind"], 0) * interval
    longest_for = max((for_seconds.get(a, 0) for a in ALERTS[inc["kind"]]), default=0)
    bound = (condition + longest_for) / scale + slack_s
    return bound


def score(sc, notifications, for_seconds, slack_s):
    pager = groups(notifications, "pager")
    chat = groups(notifications, "chat")
    matched_pages = set()
    per_incident = []
    for inc in sc["incidents"]:
        bound = allowance(inc, sc, for_seconds, slack_s)
        window = (inc["start_s"], inc["end_s"] + bound)

        def matching(gs):
            return {k: g for k, g in gs.items()
                    if window[0] <= g["first"] <= window[1] and any(names_target(inc, a, sc["accounts"]) for a in g["alerts"])}

        pages, chats = matching(pager), matching(chat)
        matched_pages |= set(pages)
        first_page = min((g["first"] for g in pages.values()), default=None)
        # A resolve of its page (or, for an incident that did not page, of its chat message) before
        # the incident ended: it looked healed while still true. (A warning "resolved" because the
        # page of the same collector now inhibits it is not counted.)
        shown = pages or chats
        false_resolves = sum(1 for g in shown.values() for r in g["resolved"] if r < inc["end_s"])
        repages = sum(max(0, len(g["firing"]) - 1) for g in pages.values()
                      if any(r < inc["end_s"] for r in g["resolved"]))
        paged_alerts = sorted({a.get("labels", {}).get("alertname", "") for g in pages.values() for a in g["alerts"]
                               if names_target(inc, a, sc["accounts"])})
        if inc["expect"] == "page":
            met = len(pages) == 1 and set(inc.get("page_alerts", [])) <= set(paged_alerts)
        elif inc["expect"] == "chat":
            met = not pages and len(chats) >= 1
        else:
            met = not pages and not chats
        per_incident.append({
            "name": inc["name"], "kind": inc["kind"], "expect": inc["expect"], "met": met,
            "paged": bool(pages), "pager_groups": len(pages), "chat_groups": len(chats),
            "time_to_page_s": None if first_page is None else round(first_page - inc["start_s"], 1),
            "bound_s": round(bound, 1), "false_resolves": false_resolves, "repages": repages,
            "paged_alerts": paged_alerts,
        })
    paging = [i for i in per_incident if i["expect"] == "page"]
    false_pages = sorted(k for k in pager if k not in matched_pages)
    totals = {
        "recall": (sum(1 for i in paging if i["paged"]) / len(paging)) if paging else 1.0,
        "precision": (len(matched_pages) / len(pager)) if pager else 1.0,
        "false_pages": len(false_pages),
        "extra_groups": sum(max(0, i["pager_groups"] - 1) for i in per_incident),
        "false_resolves": sum(i["false_resolves"] for i in per_incident),
        "pager_groups": len(pager),
        "chat_groups": len(chat),
        "pager_groups_per_paging_incident": [i["pager_groups"] for i in paging],
        "expectations_met": all(i["met"] for i in per_incident) and not false_pages,
    }
    unmatched = [{"group": k, "first_s": round(pager[k]["first"], 1),
                  "alerts": sorted({a["labels"].get("alertname", "") for a in pager[k]["alerts"]})} for k in false_pages]
    return {"scenario": sc["name"], "incidents": per_incident, "totals": totals, "false_pages": unmatched}


def table(result):
    rows = [("incident", "expect", "met", "pager groups", "chat groups", "to page (s)", "bound (s)", "false resolves", "paged alerts")]
    for i in result["incidents"]:
        rows.append((i["name"], i["expect"], "yes" if i["met"] else "NO", str(i["pager_groups"]), str(i["chat_groups"]),
                     "-" if i["time_to_page_s"] is None else f"{i['time_to_page_s']:g}", f"{i['bound_s']:g}", str(i["false_resolves"]),
                     ", ".join(i.get("paged_alerts", [])) or "-"))
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    lines = ["| " + " | ".join(cell.ljust(w) for cell, w in zip(r, widths)) + " |" for r in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    t = result["totals"]
    lines.append("")
    lines.append(f"recall {t['recall']:.2f}, precision {t['precision']:.2f}, false pages {t['false_pages']}, "
                 f"extra groups {t['extra_groups']}, false resolves {t['false_resolves']}, "
                 f"{t['pager_groups']} pager and {t['chat_groups']} chat groups; expectations "
                 + ("met" if t["expectations_met"] else "NOT met"))
    for fp in result["false_pages"]:
        lines.append(f"false page at {fp['first_s']} s: {', '.join(fp['alerts'])}")
    return "\n".join(lines)
