package asset

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
)

// ErrBadAmount: an amount that does not parse.
var ErrBadAmount = errors.New("bad amount")

// ParseAmount reads an amount given by a person for an asset with decimals places
// and returns it in the asset's smallest unit. The rule:
//
//   - a plain integer ("1234") is already in the smallest unit and is returned
//     as is, whatever decimals is (so scripts written before decimals keep
//     their meaning);
//   - a value with a decimal point ("12.34", "12.", ".5") is in whole units: it
//     is multiplied by 10^decimals and may have at most decimals fractional
//     digits (trailing zeros count: "1.50" needs 2 decimals), else it is an
//     error that says how many the asset allows.
//
// Signs, exponents, spaces, thousands separators and values above 2^64-1 are
// errors. Zero parses (callers that need a positive amount check for it).
func ParseAmount(s string, decimals uint8) (uint64, error) {
	whole, frac, dot := strings.Cut(s, ".")
	if !digits(whole) || !digits(frac) || (whole == "" && frac == "") {
		return 0, fmt.Errorf("%w: %q is not a number (want digits, e.g. 1234 in the smallest unit or 12.34 in whole units)", ErrBadAmount, s)
	}
	if !dot {
		n, err := strconv.ParseUint(whole, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%w: %q is more than %d", ErrBadAmount, s, uint64(math.MaxUint64))
		}
		return n, nil
	}
	if len(frac) > int(decimals) {
		if decimals == 0 {
			return 0, fmt.Errorf("%w: %q has %d digits after the point; the asset has no decimals: give a whole number", ErrBadAmount, s, len(frac))
		}
		return 0, fmt.Errorf("%w: %q has %d digits after the point; the asset has %d decimals", ErrBadAmount, s, len(frac), decimals)
	}
	// whole followed by frac padded to decimals digits, read as one integer.
	n, ok := new(big.Int).SetString(whole+frac+strings.Repeat("0", int(decimals)-len(frac)), 10)
	if !ok || !n.IsUint64() {
		return 0, fmt.Errorf("%w: %q is more than the largest amount, %s", ErrBadAmount, s, FormatAmount(math.MaxUint64, decimals))
	}
	return n.Uint64(), nil
}

// FormatAmount writes amount (in the smallest unit) in whole units with exactly
// decimals fractional digits: FormatAmount(1234, 2) is "12.34", FormatAmount(5, 3)
// is "0.005", and with no decimals it is the integer.
func FormatAmount(amount uint64, decimals uint8) string {
	s := strconv.FormatUint(amount, 10)
	if decimals == 0 {
		return s
	}
	d := int(decimals)
	if len(s) <= d {
		s = strings.Repeat("0", d-len(s)+1) + s
	}
	return s[:len(s)-d] + "." + s[len(s)-d:]
}

// Display is amount in whole units followed by the asset's name: "12.34 USD".
func Display(amount uint64, decimals uint8, asset string) string {
	return FormatAmount(amount, decimals) + " " + asset
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
