package netguard

import (
	"net/netip"
	"testing"
)

// FuzzCheck feeds arbitrary 16-byte addresses to Check and Control: neither
// may panic, an IPv4-mapped address must get the verdict of its IPv4 form,
// and Control must agree with Check on the same address.
func FuzzCheck(f *testing.F) {
	for _, s := range []string{
		"::", "::1", "::ffff:127.0.0.1", "::ffff:8.8.8.8", "::127.0.0.1",
		"64:ff9b::7f00:1", "2002:7f00:1::", "2001:0:4136:e378:8000:63bf:3fff:fdd2",
		"fd00:ec2::254", "fe80::1", "ff02::1", "2606:4700::1111",
	} {
		b := netip.MustParseAddr(s).As16()
		f.Add(b[:])
	}
	guards := []*Guard{
		New(Config{}),
		New(Config{AllowPrivate: true}),
		New(Config{Allow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fc00::/7")}}),
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) != 16 {
			return
		}
		a := netip.AddrFrom16([16]byte(b))
		for i, g := range guards {
			err := g.Check(a)
			if a.Is4In6() {
				if err4 := g.Check(a.Unmap()); (err == nil) != (err4 == nil) {
					t.Fatalf("guard %d: %s -> %v but %s -> %v", i, a, err, a.Unmap(), err4)
				}
			}
			cerr := g.Control("tcp", netip.AddrPortFrom(a, 443).String(), nil)
			if (err == nil) != (cerr == nil) {
				t.Fatalf("guard %d: Check(%s) = %v but Control = %v", i, a, err, cerr)
			}
		}
	})
}
