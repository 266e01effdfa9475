package crosschain

import (
	"regexp"
	"strconv"
	"time"
)

// Client-side rendering of the times in reasons. The reasons chains record
// (a refused leg's, an abort decision's) name times as Unix milliseconds,
// because they are part of the replicated state and must not depend on a
// node's locale or time zone. People read them through HumanReason; nothing
// that is written to a chain goes through it.

// TimeLayout is how times are shown to people: RFC 3339 in UTC, to the
// millisecond (the resolution of block times and deadlines).
const TimeLayout = "2006-01-02T15:04:05.000Z07:00"

// FormatMillis renders a Unix-millisecond time as RFC 3339 (UTC).
func FormatMillis(ms int64) string { return time.UnixMilli(ms).UTC().Format(TimeLayout) }

// reasonTimes matches the times the chains' reasons name: "deadline N",
// "block time N", "coordinator time N", with N Unix milliseconds (at least
// 12 digits, so that small numbers — heights, amounts — are never taken for
// times).
var reasonTimes = regexp.MustCompile(`\b(deadline|block time|coordinator time) (\d{12,15})\b`)

// HumanReason returns reason with the Unix-millisecond times it names
// written in RFC 3339 (UTC): "deadline 1796341968469 passed (block time
// 1796341968512)" reads "deadline 2026-12-03T21:52:48.469Z passed (block
// time 2026-12-03T21:52:48.512Z)". Other text is left as it is.
func HumanReason(reason string) string {
	return reasonTimes.ReplaceAllStringFunc(reason, func(m string) string {
		sub := reasonTimes.FindStringSubmatch(m)
		ms, err := strconv.ParseInt(sub[2], 10, 64)
		if err != nil {
			return m
		}
		return sub[1] + " " + FormatMillis(ms)
	})
}
