package crosschain

import "testing"

func TestHumanReason(t *testing.T) {
	for in, want := range map[string]string{
		"deadline 1796341968469 passed (block time 1796341968512)":                                                "deadline 2026-12-03T23:52:48.469Z passed (block time 2026-12-03T23:52:48.512Z)",
		"leg 1 on beta refused: deadline 1796341968469 passed (coordinator time 1796341968000)":                   "leg 1 on beta refused: deadline 2026-12-03T23:52:48.469Z passed (coordinator time 2026-12-03T23:52:48.000Z)",
		"deadline 1796341968469 is 2h0m0s after block time 1796334768469, beyond this chain's max lock of 1h0m0s": "deadline 2026-12-03T23:52:48.469Z is 2h0m0s after block time 2026-12-03T21:52:48.469Z, beyond this chain's max lock of 1h0m0s",
		"insufficient funds: balance 100 < 5000000":                                                               "insufficient funds: balance 100 < 5000000",
		"deadline 12 passed": "deadline 12 passed",
		"":                   "",
	} {
		if got := HumanReason(in); got != want {
			t.Errorf("HumanReason(%q)\n = %q\nwant %q", in, got, want)
		}
	}
}
