package asset

import (
	"errors"
	"math"
	"strings"
	"testing"
)

func TestParseAmount(t *testing.T) {
	for _, c := range []struct {
		in       string
		decimals uint8
		want     uint64
		err      string // substring of the error, "" for none
	}{
		{"1234", 2, 1234, ""}, // integers stay in the smallest unit
		{"1234", 0, 1234, ""},
		{"0", 2, 0, ""},
		{"12.34", 2, 1234, ""},
		{"12.3", 2, 1230, ""},
		{"12.", 2, 1200, ""},
		{".5", 2, 50, ""},
		{"0.01", 2, 1, ""},
		{"12.", 0, 12, ""},
		{"1.50", 2, 150, ""},
		{"007.5", 1, 75, ""},
		{"18446744073709551615", 6, math.MaxUint64, ""},
		{"18446744073709.551615", 6, math.MaxUint64, ""},
		{"0.000000000000000000001", 21, 1, ""},
		{"12.345", 2, 0, "has 3 digits after the point; the asset has 2 decimals"},
		{"1.50", 1, 0, "has 2 digits after the point; the asset has 1 decimals"},
		{"1.5", 0, 0, "the asset has no decimals"},
		{"18446744073709551616", 0, 0, "is more than"},
		{"18446744073709.551616", 6, 0, "is more than the largest amount, 18446744073709.551615"},
		{"184467440737095516.16", 2, 0, "is more than"},
		{"", 2, 0, "not a number"},
		{".", 2, 0, "not a number"},
		{"-1", 2, 0, "not a number"},
		{"+1", 2, 0, "not a number"},
		{"1e3", 2, 0, "not a number"},
		{"1,000", 2, 0, "not a number"},
		{" 1", 2, 0, "not a number"},
		{"1.2.3", 2, 0, "not a number"},
		{"١٢", 2, 0, "not a number"},
	} {
		got, err := ParseAmount(c.in, c.decimals)
		if c.err == "" {
			if err != nil || got != c.want {
				t.Errorf("ParseAmount(%q, %d) = %d, %v; want %d", c.in, c.decimals, got, err, c.want)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.err) || !errors.Is(err, ErrBadAmount) {
			t.Errorf("ParseAmount(%q, %d) = %d, %v; want an ErrBadAmount containing %q", c.in, c.decimals, got, err, c.err)
		}
	}
}

func TestFormatAmount(t *testing.T) {
	for _, c := range []struct {
		n        uint64
		decimals uint8
		want     string
	}{
		{1234, 2, "12.34"},
		{1234, 0, "1234"},
		{0, 0, "0"},
		{0, 2, "0.00"},
		{5, 3, "0.005"},
		{100, 2, "1.00"},
		{math.MaxUint64, 6, "18446744073709.551615"},
		{math.MaxUint64, 20, "0.18446744073709551615"},
		{1, 21, "0.000000000000000000001"},
	} {
		if got := FormatAmount(c.n, c.decimals); got != c.want {
			t.Errorf("FormatAmount(%d, %d) = %q, want %q", c.n, c.decimals, got, c.want)
		}
	}
	if got := Display(1234, 2, "USD"); got != "12.34 USD" {
		t.Errorf("Display = %q", got)
	}
}

// FuzzParseAmount: whatever parses formats back to a string that parses to the
// same amount, and the formatted form of any amount parses back to it.
func FuzzParseAmount(f *testing.F) {
	for _, s := range []string{"0", "1234", "12.34", ".5", "12.", "18446744073709551615", "1.000000000000000000001", "x"} {
		f.Add(s, uint8(2), uint64(1234))
	}
	f.Add("184467440737095516.15", uint8(2), uint64(math.MaxUint64))
	f.Fuzz(func(t *testing.T, s string, decimals uint8, n uint64) {
		decimals %= 40
		if v, err := ParseAmount(s, decimals); err == nil {
			back, err := ParseAmount(FormatAmount(v, decimals), decimals)
			if err != nil || back != v {
				t.Fatalf("ParseAmount(%q, %d) = %d, formatted %q parses to %d, %v", s, decimals, v, FormatAmount(v, decimals), back, err)
			}
			if !strings.Contains(s, ".") && FormatAmount(v, 0) != strings.TrimLeft(s, "0") && v != 0 {
				t.Fatalf("integer %q parsed to %d", s, v)
			}
		}
		out := FormatAmount(n, decimals)
		if back, err := ParseAmount(out, decimals); err != nil || back != n {
			t.Fatalf("FormatAmount(%d, %d) = %q parses to %d, %v", n, decimals, out, back, err)
		}
	})
}
