// Command balance prints, as Markdown for bench/README.md, how evenly each
// consistent hash spreads client addresses, how many move when one node
// leaves, and how smoothly each weighted round robin spreads its picks.
//
//	cd bench && go run ./cmd/balance
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/lbkit/lbkit/bench"
)

func main() {
	nkeys := flag.Int("keys", 1_000_000, "number of client addresses")
	removals := flag.Int("removals", 10, "nodes removed in turn (mean and worst reported)")
	flag.Parse()
	log.SetFlags(0)

	start := time.Now()
	ks := bench.NewKeys(*nkeys, 1)
	fmt.Printf("Balance and disruption: %d random IPv4 clients (seed 1), nodes of equal weight; "+
		"moved = share of all keys that changed node when one of the first %d nodes was removed "+
		"(mean / worst; ideal 1/N), extra = keys moved although their node stayed.\n\n", *nkeys, *removals)
	fmt.Println("| hash | N | imbalance max/mean | moved mean | moved worst | moved mean ÷ 1/N | extra |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|")
	for _, n := range []int{10, 100} {
		for _, h := range bench.Hashes {
			r, err := bench.Balance(h, n, ks, *removals)
			if err != nil {
				log.Fatalf("%s N=%d: %v", h.Name, n, err)
			}
			fmt.Printf("| %s | %d | %.3f | %.4f | %.4f | %.2f | %.4f |\n",
				h.Name, n, r.Imbalance, r.MovedMean, r.MovedMax, r.MovedMean*float64(n), r.Extra)
		}
	}

	fmt.Println()
	fmt.Println("Smoothness: picks from a fresh balancer (ours starts each snapshot at a random point of its cycle); " +
		"discrepancy = the largest gap, over every window of consecutive picks and every backend, between picks received and the fair share L·w/Σw " +
		"(independent of the starting point; smooth WRR stays below 2); run = most consecutive picks of one backend.")
	fmt.Println()
	fmt.Println("| wrr | weights | first picks | discrepancy | run |")
	fmt.Println("|---|---|---|---:|---:|")
	for _, ws := range [][]int{{3, 2, 1}, {5, 1, 1}, {10, 20, 30, 40, 50, 60, 70, 80, 90, 100}} {
		total := 0
		for _, w := range ws {
			total += w
		}
		for _, w := range bench.WRRs {
			seq, err := bench.Sequence(w, ws, 2*total)
			if err != nil {
				log.Fatalf("%s %v: %v", w.Name, ws, err)
			}
			shown := seq[:min(len(seq), 2*total, 24)]
			fmt.Printf("| %s | %v | %s … | %.2f | %d |\n", w.Name, ws, bench.Letters(shown), bench.Discrepancy(seq, ws, total), bench.LongestRun(seq))
		}
	}
	fmt.Fprintf(os.Stderr, "balance: %v\n", time.Since(start).Round(time.Second))
}
