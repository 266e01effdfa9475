package config

import (
	"testing"
	"time"
)

func TestDurationText(t *testing.T) {
	var d Duration
	if err := d.UnmarshalText([]byte("1.5s")); err != nil || d.Duration != 1500*time.Millisecond {
		t.Fatal(d, err)
	}
	if b, _ := d.MarshalText(); string(b) != "1.5s" {
		t.Fatal(string(b))
	}
}
