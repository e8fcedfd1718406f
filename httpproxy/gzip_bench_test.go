package httpproxy

import (
	"io"
	"runtime/debug"
	"strconv"
	"testing"
	"unsafe"
)

// negotiate is what the fast lane does for one request and response:
// read Accept-Encoding, read the response head, decide, edit the head.
func negotiate(ae, ct, cl []byte, body, dst []byte) []byte {
	var a gzipAccept
	a.add(unsafe.String(unsafe.SliceData(ae), len(ae)))
	h := gzipHead{status: 200, length: -1}
	h.line("Content-Type", unsafe.String(unsafe.SliceData(ct), len(ct)))
	h.line("Content-Length", unsafe.String(unsafe.SliceData(cl), len(cl)))
	compress := a.accepts("GET") && gzipCLB.decide(&h, body, gzipEnd) == gzipCompress
	e := h.edit(compress)
	if !e.drops("Content-Length") {
		dst = append(dst, "Content-Length: 2400\r\n"...)
	}
	return e.appendLines(dst)
}

func TestGzipNoAllocs(t *testing.T) {
	ae, ct, cl := []byte("gzip, deflate, br"), []byte("application/json; charset=utf-8"), []byte("2048")
	body, dst := testBody(2048), make([]byte, 0, 256)
	if n := testing.AllocsPerRun(100, func() { negotiate(ae, ct, cl, body, dst[:0]) }); n != 0 {
		t.Errorf("negotiation: %v allocs, want 0", n)
	}
	if raceBuild() {
		return // the race detector drops pooled objects on purpose
	}
	out := make([]byte, 0, 32<<10)
	if n := testing.AllocsPerRun(100, func() { gzipAppend(out[:0], body) }); n != 0 {
		t.Errorf("gzipAppend: %v allocs, want 0", n)
	}
	if n := testing.AllocsPerRun(100, func() {
		g := newGzipChunked(io.Discard)
		g.Write(body)
		g.Close()
	}); n != 0 {
		t.Errorf("gzipChunked: %v allocs, want 0", n)
	}
}

// raceBuild reports whether the test binary was built with -race.
func raceBuild() bool {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "-race" {
				return s.Value == "true"
			}
		}
	}
	return false
}

func BenchmarkGzipNegotiate(b *testing.B) {
	ae, ct, cl := []byte("gzip, deflate, br"), []byte("application/json; charset=utf-8"), []byte("2048")
	body, dst := testBody(2048), make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		negotiate(ae, ct, cl, body, dst[:0])
	}
}

func BenchmarkGzipAppend(b *testing.B) {
	for _, n := range []int{1 << 10, 16 << 10} {
		body, out := testBody(n), make([]byte, 0, 2*n)
		b.Run(byteSize(n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(n))
			for b.Loop() {
				gzipAppend(out[:0], body)
			}
		})
	}
}

func BenchmarkGzipChunked(b *testing.B) {
	for _, n := range []int{16 << 10, 256 << 10} {
		body := testBody(n)
		b.Run(byteSize(n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(n))
			for b.Loop() {
				g := newGzipChunked(io.Discard)
				g.Write(body)
				g.Close()
			}
		})
	}
}

func byteSize(n int) string {
	if n >= 1<<10 {
		return "n=" + strconv.Itoa(n>>10) + "KiB"
	}
	return "n=" + strconv.Itoa(n)
}
