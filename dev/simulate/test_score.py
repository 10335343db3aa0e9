"""Unit tests of the score and the scenario format (pure: no stack). Run by scripts/test."""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scenario  # noqa: E402
import score  # noqa: E402

BASE = {"name": "t", "duration_s": 100, "time_scale": 60,
        "shape": {"collectors": {"a": "15m", "b": "1h"}, "accounts": 3, "regions": ["r"]}}


def sc(*incidents):
    return scenario.parse(dict(BASE, incidents=list(incidents)))


def note(receiver, at, group, status="firing", **labels):
    return {"receiver": receiver, "at_s": at, "notification": {"groupKey": group, "status": status, "alerts": [{"labels": labels}]}}


class ScoreTest(unittest.TestCase):
    FOR = {"PoloCollectorStale": 300, "PoloCollectorFailing": 300}

    def test_one_page_in_time_is_recall_and_precision_one(self):
        s = sc({"kind": "collector_stops", "collector": "a", "start_s": 10, "end_s": 50, "expect": "page"})
        r = score.score(s, [note("pager", 40, "g1", alertname="PoloCollectorStale", collector="a")], self.FOR, 10)
        self.assertEqual((r["totals"]["recall"], r["totals"]["precision"], r["totals"]["extra_groups"]), (1.0, 1.0, 0))
        self.assertTrue(r["totals"]["expectations_met"])
        self.assertEqual(r["incidents"][0]["time_to_page_s"], 30)
        # 2.4 × 15m + 5m = 41 production minutes, at 60× 41 s, plus 10 s of slack.
        self.assertEqual(r["incidents"][0]["bound_s"], 51)

    def test_a_page_for_another_collector_is_a_false_page_and_a_miss(self):
        s = sc({"kind": "collector_stops", "collector": "a", "start_s": 10, "end_s": 50, "expect": "page"})
        r = score.score(s, [note("pager", 40, "g1", alertname="PoloCollectorStale", collector="b")], self.FOR, 10)
        self.assertEqual((r["totals"]["recall"], r["totals"]["precision"], r["totals"]["false_pages"]), (0.0, 0.0, 1))
        self.assertFalse(r["totals"]["expectations_met"])

    def test_two_groups_and_a_resolve_while_true_are_counted(self):
        s = sc({"kind": "collector_stops", "collector": "a", "start_s": 10, "end_s": 80, "expect": "page"})
        notes = [note("pager", 40, "g1", collector="a"), note("pager", 45, "g2", collector="a"),
                 note("pager", 60, "g1", status="resolved", collector="a"), note("pager", 70, "g1", collector="a")]
        r = score.score(s, notes, self.FOR, 10)
        self.assertEqual(r["totals"]["extra_groups"], 1)
        self.assertEqual(r["totals"]["false_resolves"], 1)
        self.assertEqual(r["incidents"][0]["repages"], 1)

    def test_a_page_expects_exactly_one_pager_group(self):
        # The full outage of a collector as it paged before the per-collector group: the fast
        # freshness burn in one group, PoloCollectorStale in another. Two pages: not met.
        s = sc({"kind": "collector_stops", "collector": "a", "start_s": 10, "end_s": 80, "expect": "page"})
        two = [note("pager", 30, "burn", alertname="PoloCollectorFreshnessBudgetBurn", collector="a"),
               note("pager", 40, "stale", alertname="PoloCollectorStale", collector="a")]
        r = score.score(s, two, self.FOR, 10)
        self.assertFalse(r["incidents"][0]["met"])
        self.assertEqual((r["totals"]["extra_groups"], r["totals"]["pager_groups_per_paging_incident"]), (1, [2]))
        self.assertFalse(r["totals"]["expectations_met"])
        # One group (group key per collector) holding both: met.
        one = [note("pager", 30, "c", alertname="PoloCollectorFreshnessBudgetBurn", collector="a"),
               note("pager", 40, "c", alertname="PoloCollectorStale", collector="a")]
        r = score.score(s, one, self.FOR, 10)
        self.assertTrue(r["incidents"][0]["met"])
        self.assertEqual(r["incidents"][0]["paged_alerts"], ["PoloCollectorFreshnessBudgetBurn", "PoloCollectorStale"])
        self.assertEqual(r["totals"]["pager_groups_per_paging_incident"], [1])

    def test_page_alerts_must_be_in_the_page(self):
        s = sc({"kind": "collector_fails", "collector": "a", "accounts": 2, "start_s": 10, "end_s": 80, "expect": "page",
                "page_alerts": ["PoloCollectorFreshnessBudgetBurn"]})
        r = score.score(s, [note("pager", 40, "g", alertname="PoloCollectorFailing", collector="a")], self.FOR, 10)
        self.assertFalse(r["incidents"][0]["met"])
        r = score.score(s, [note("pager", 40, "g", alertname="PoloCollectorFreshnessBudgetBurn", collector="a")], self.FOR, 10)
        self.assertTrue(r["incidents"][0]["met"])

    def test_chat_expectation_fails_on_a_page(self):
        s = sc({"kind": "collector_fails", "collector": "a", "start_s": 10, "end_s": 50, "expect": "chat"})
        r = score.score(s, [note("chat", 40, "c", collector="a"), note("pager", 41, "p", collector="a")], self.FOR, 10)
        self.assertFalse(r["incidents"][0]["met"])

    def test_a_page_after_the_window_matches_nothing(self):
        s = sc({"kind": "collector_stops", "collector": "a", "start_s": 10, "end_s": 20, "expect": "page"})
        r = score.score(s, [note("pager", 90, "g1", collector="a")], self.FOR, 10)
        self.assertEqual(r["totals"]["false_pages"], 1)


class ScalingTest(unittest.TestCase):
    def test_rule_durations_are_divided_by_time_scale(self):
        import simulate
        self.assertEqual(simulate.scale_expr("account:polo_account_scan_age_seconds:as_of_read > 86400", 60),
                         "account:polo_account_scan_age_seconds:as_of_read > 1440")
        self.assertEqual(simulate.scale_expr("rate(x[5m]) > 0 and increase(y[1h]) > 2000", 60),
                         "rate(x[5000ms]) > 0 and increase(y[60000ms]) > 2000")
        self.assertEqual(simulate.scaled("5m", 60), "5000ms")
        self.assertEqual(simulate.scaled("30s", 60), "1000ms")


class ActionsTest(unittest.TestCase):
    def test_an_instant_exporter_restart_is_one_action_and_ends_come_before_starts(self):
        import simulate
        s = sc({"kind": "exporter_restart", "start_s": 50, "end_s": 50, "expect": "none"},
               {"kind": "dlq_fills", "start_s": 10, "end_s": 50, "expect": "page"},
               {"kind": "dlq_fills", "start_s": 50, "end_s": 50, "expect": "page"})
        got = [(at, what, inc["index"]) for at, what, inc in simulate.actions(s)]
        self.assertEqual(got, [(10, "start", 1), (50, "end", 1), (50, "start", 0), (50, "start", 2), (50, "end", 2)])


class ScenarioTest(unittest.TestCase):
    def test_rejects_what_it_cannot_run(self):
        for bad in ({"kind": "nope", "start_s": 1, "expect": "page"},
                    {"kind": "collector_stops", "collector": "zz", "start_s": 1, "expect": "page"},
                    {"kind": "collector_stops", "collector": "a", "start_s": 1, "expect": "maybe"},
                    {"kind": "collector_stops", "collector": "a", "start_s": 90, "end_s": 200, "expect": "page"},
                    {"kind": "account_loses_access", "account": 3, "start_s": 1, "expect": "chat"},
                    {"kind": "collector_fails", "collector": "a", "start_s": 1, "expect": "chat", "page_alerts": ["X"]}):
            with self.assertRaises(scenario.ScenarioError, msg=str(bad)):
                sc(bad)

    def test_durations_and_accounts(self):
        s = sc({"kind": "late_rows", "collector": "a", "delay": "1h30m", "start_s": 1, "end_s": 2, "expect": "none"})
        self.assertEqual(s["incidents"][0]["delay"], 5400)
        self.assertEqual(s["accounts"][2], "100000000002")
        self.assertEqual(s["collectors"], {"a": 900, "b": 3600})

    def test_shipped_scenarios_parse(self):
        here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scenarios")
        for name in sorted(os.listdir(here)):
            scenario.load(os.path.join(here, name))


if __name__ == "__main__":
    unittest.main()
