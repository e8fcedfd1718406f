// Command report turns the raw outputs of bench/run.sh (bench/out/) into
// BENCHMARKS.md and its chart. It types in no figure: every number comes
// from a wrk, h2load, h3load, iperf3 or udpload output and the .cpu file beside it.
//
//	report -out bench/out -md BENCHMARKS.md -chart bench/benchmarks.png
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

func main() {
	out := flag.String("out", "bench/out", "run.sh's raw output `dir`")
	md := flag.String("md", "BENCHMARKS.md", "Markdown `file` to write")
	chart := flag.String("chart", "bench/benchmarks.png", "chart `file` to write (.png or .svg)")
	flag.Parse()
	r, err := load(*out)
	if err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
	rel, err := filepath.Rel(filepath.Dir(*md), *chart)
	if err != nil {
		rel = *chart
	}
	if err := writeChart(r, *chart); err != nil {
		fmt.Fprintln(os.Stderr, "report: chart:", err)
		os.Exit(1)
	}
	if err := os.WriteFile(*md, []byte(render(r, filepath.ToSlash(rel))), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
}

// Sample is one load run.
type Sample struct {
	Rate     float64 // req/s, handshakes/s, Gbit/s or round trips/s
	P50, P99 float64 // ms (wrk and h3load only)
	CPU      float64 // proxy CPU seconds during the load
	Wall     float64 // load wall-clock seconds
	HasCPU   bool
	Failed   int // failed requests (h2load)
	// The idle suite's: RSS growth per held connection, KiB, and the
	// connections the proxy closed while they were held.
	KiBPerConn float64
	Unknown    bool // the idle client did not report closed_by_peer
}

// Cores is the proxy's average CPU use during the load.
func (s Sample) Cores() float64 {
	if !s.HasCPU || s.Wall <= 0 {
		return 0
	}
	return s.CPU / s.Wall
}

// PerOp is the proxy's CPU microseconds per operation.
func (s Sample) PerOp() float64 {
	if s.Rate <= 0 {
		return 0
	}
	return s.Cores() / s.Rate * 1e6
}

// Results holds every sample by suite, then by key (contender and variant).
type Results struct {
	Meta    map[string]map[string]string // suite → meta
	Samples map[string]map[string][]Sample
	Elapsed map[string]string // suites joined by '-' → seconds
}

func load(dir string) (*Results, error) {
	r := &Results{Meta: map[string]map[string]string{}, Samples: map[string]map[string][]Sample{}, Elapsed: map[string]string{}}
	if els, _ := filepath.Glob(filepath.Join(dir, "elapsed-*.txt")); els != nil {
		for _, e := range els {
			b, err := os.ReadFile(e)
			if err == nil {
				k := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(e), "elapsed-"), ".txt")
				r.Elapsed[k] = strings.TrimSpace(string(b))
			}
		}
	}
	for _, suite := range suites {
		d := filepath.Join(dir, suite)
		meta, err := readMeta(filepath.Join(d, "meta.txt"))
		if err != nil {
			continue // suite not run
		}
		r.Meta[suite] = meta
		r.Samples[suite] = map[string][]Sample{}
		files, _ := os.ReadDir(d)
		for _, f := range files {
			name := f.Name()
			ext := filepath.Ext(name)
			if ext != ".wrk" && ext != ".h2load" && ext != ".h3load" && ext != ".json" && ext != ".idle" {
				continue
			}
			base := strings.TrimSuffix(name, ext)
			i := strings.LastIndexByte(base, '.')
			if i < 0 {
				continue
			}
			key := base[:i]
			b, err := os.ReadFile(filepath.Join(d, name))
			if err != nil {
				return nil, err
			}
			var s Sample
			switch ext {
			case ".wrk":
				s, err = parseWrk(string(b))
			case ".h2load":
				s, err = parseH2load(string(b))
			case ".h3load":
				s, err = parseH3load(string(b))
			case ".idle":
				s, err = parseIdle(string(b))
			case ".json":
				if suite == "l4" {
					s, err = parseIperf(b)
				} else {
					s, err = parseUDP(b)
				}
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %v", filepath.Join(d, name), err)
			}
			if c, err := os.ReadFile(filepath.Join(d, base+".cpu")); err == nil {
				fs := strings.Fields(string(c))
				if len(fs) == 2 {
					s.CPU, _ = strconv.ParseFloat(fs[0], 64)
					s.Wall, _ = strconv.ParseFloat(fs[1], 64)
					s.HasCPU = true
				}
			}
			r.Samples[suite][key] = append(r.Samples[suite][key], s)
		}
	}
	if len(r.Meta) == 0 {
		return nil, fmt.Errorf("no results in %s: run bench/run.sh first", dir)
	}
	return r, nil
}

func readMeta(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ": ")
		if ok {
			m[k] = v
		}
	}
	return m, sc.Err()
}

var (
	wrkRate = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	wrkPct  = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([0-9.]+)(us|ms|s)\s*$`)
	wrkErrs = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	h2Rate  = regexp.MustCompile(`finished in [0-9.]+m?s, ([0-9.]+) req/s`)
	h2Reqs  = regexp.MustCompile(`requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored`)
)

func parseWrk(s string) (Sample, error) {
	var out Sample
	m := wrkRate.FindStringSubmatch(s)
	if m == nil {
		return out, fmt.Errorf("no Requests/sec line")
	}
	out.Rate, _ = strconv.ParseFloat(m[1], 64)
	for _, p := range wrkPct.FindAllStringSubmatch(s, -1) {
		v, _ := strconv.ParseFloat(p[2], 64)
		switch p[3] {
		case "us":
			v /= 1000
		case "s":
			v *= 1000
		}
		if p[1] == "50" {
			out.P50 = v
		} else {
			out.P99 = v
		}
	}
	if m := wrkErrs.FindStringSubmatch(s); m != nil {
		out.Failed, _ = strconv.Atoi(m[1])
	}
	return out, nil
}

func parseH2load(s string) (Sample, error) {
	var out Sample
	m := h2Rate.FindStringSubmatch(s)
	if m == nil {
		return out, fmt.Errorf("no 'finished in' line")
	}
	out.Rate, _ = strconv.ParseFloat(m[1], 64)
	if m := h2Reqs.FindStringSubmatch(s); m != nil {
		f, _ := strconv.Atoi(m[2])
		e, _ := strconv.Atoi(m[3])
		out.Failed = f + e
	}
	return out, nil
}

// parseIdle reads run.sh's idle file: "conns N", "rss_before_kib N",
// "rss_after_kib N", "closed_by_peer N".
func parseIdle(text string) (Sample, error) {
	v := map[string]float64{}
	unknown := false
	for _, l := range strings.Split(strings.TrimSpace(text), "\n") {
		k, x, ok := strings.Cut(l, " ")
		if !ok {
			continue
		}
		if k == "closed_by_peer" && x == "unknown" {
			unknown = true
			continue
		}
		f, err := strconv.ParseFloat(x, 64)
		if err != nil {
			return Sample{}, fmt.Errorf("%s: %v", k, err)
		}
		v[k] = f
	}
	if v["conns"] <= 0 || v["rss_after_kib"] <= 0 {
		return Sample{}, fmt.Errorf("no conns or rss_after_kib line")
	}
	return Sample{KiBPerConn: (v["rss_after_kib"] - v["rss_before_kib"]) / v["conns"], Failed: int(v["closed_by_peer"]), Unknown: unknown}, nil
}

func parseIperf(b []byte) (Sample, error) {
	var v struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return Sample{}, err
	}
	if v.Error != "" {
		return Sample{}, fmt.Errorf("iperf3: %s", v.Error)
	}
	return Sample{Rate: v.End.SumReceived.BitsPerSecond / 1e9}, nil
}

func parseUDP(b []byte) (Sample, error) {
	var v struct {
		Replies int64   `json:"replies"`
		Sent    int64   `json:"sent"`
		Seconds float64 `json:"seconds"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return Sample{}, err
	}
	if v.Seconds <= 0 {
		return Sample{}, fmt.Errorf("no duration")
	}
	return Sample{Rate: float64(v.Replies) / v.Seconds, Failed: int(v.Sent - v.Replies)}, nil
}

// Stat is the median of a key's samples and their spread.
type Stat struct {
	N                   int
	Rate, Min, Max      float64
	P50, P99            float64
	Cores, PerOp        float64
	HasCPU              bool
	Failed              int
	PerOpMin, PerOpMx   float64
	KiB, KiBMin, KiBMax float64 // idle: RSS growth per connection
	Unknown             int     // idle: runs whose closed count is unknown
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func (r *Results) stat(suite, key string) (Stat, bool) {
	ss := r.Samples[suite][key]
	if len(ss) == 0 {
		return Stat{}, false
	}
	var rate, p50, p99, cores, perop, kib []float64
	st := Stat{N: len(ss), HasCPU: ss[0].HasCPU}
	for _, s := range ss {
		rate = append(rate, s.Rate)
		p50 = append(p50, s.P50)
		p99 = append(p99, s.P99)
		cores = append(cores, s.Cores())
		perop = append(perop, s.PerOp())
		kib = append(kib, s.KiBPerConn)
		st.Failed += s.Failed
		if s.Unknown {
			st.Unknown++
		}
	}
	st.Rate, st.Min, st.Max = median(rate), slices.Min(rate), slices.Max(rate)
	st.P50, st.P99 = median(p50), median(p99)
	st.Cores, st.PerOp = median(cores), median(perop)
	st.PerOpMin, st.PerOpMx = slices.Min(perop), slices.Max(perop)
	st.KiB, st.KiBMin, st.KiBMax = median(kib), slices.Min(kib), slices.Max(kib)
	return st, true
}

// Spread is (max − min) / median, in percent.
func (s Stat) Spread() float64 {
	if s.Rate == 0 {
		return 0
	}
	return (s.Max - s.Min) / s.Rate * 100
}
