package main

import (
	"image/color"
	"os"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

type panel struct {
	title, ylabel string
	suite         string
	names         []string
	suffix        string
	value         func(Stat) float64
}

func writeChart(r *Results, path string) error {
	panels := []panel{
		{"L7 keep-alive 1 KiB GET", "k req/s", "l7", l7Names, "", func(s Stat) float64 { return s.Rate / 1000 }},
		{"L7 proxy CPU per request", "µs", "l7", l7Names[:5], "", func(s Stat) float64 { return s.PerOp }},
		{"L4 TCP, 1 stream (iperf3)", "Gbit/s", "l4", l4Names, ".p1", func(s Stat) float64 { return s.Rate }},
		{"L4 proxy CPU, 1 stream", "cores", "l4", l4Names[:4], ".p1", func(s Stat) float64 { return s.Cores }},
		{"HTTPS proxy CPU per full handshake", "µs", "tls", tlsNames, ".hs", func(s Stat) float64 { return s.PerOp }},
		{"HTTPS keep-alive", "k req/s", "tls", tlsNames, ".ka", func(s Stat) float64 { return s.Rate / 1000 }},
		{"UDP through the proxy", "k datagrams/s", "udp", udpNames, "", func(s Stat) float64 { return 2 * s.Rate / 1000 }},
		{"L7 CLB defaults, browser-like client (gzip)", "k req/s", "l7gzip", gzNames, "", func(s Stat) float64 { return s.Rate / 1000 }},
		{"L7 gzip: proxy CPU per request", "µs", "l7gzip", gzNames, "", func(s Stat) float64 { return s.PerOp }},
		{"HTTP/2 over TLS 1.3 (h2load -c16 -m16)", "k req/s", "h2", h2Names, "", func(s Stat) float64 { return s.Rate / 1000 }},
		{"HTTP/2: proxy CPU per request", "µs", "h2", h2Names, "", func(s Stat) float64 { return s.PerOp }},
		{"HTTP/3 (h3load -c 16 -m 16)", "k req/s", "h3", h3Names, ".h3", func(s Stat) float64 { return s.Rate / 1000 }},
		{"HTTP/3: proxy CPU per request", "µs", "h3", h3Names, ".h3", func(s Stat) float64 { return s.PerOp }},
		{"Idle HTTP keep-alive connection", "KiB RSS", "idle", idleNames, ".http", func(s Stat) float64 { return s.KiB }},
		{"Idle proxied TCP connection", "KiB RSS", "idle", idleNames, ".tcp", func(s Stat) float64 { return s.KiB }},
	}
	var plots []*plot.Plot
	for _, pn := range panels {
		if _, ok := r.Meta[pn.suite]; !ok {
			continue
		}
		var vals plotter.Values
		var labels []string
		for _, n := range pn.names {
			s, ok := r.stat(pn.suite, n+pn.suffix)
			if !ok {
				continue
			}
			vals = append(vals, pn.value(s))
			labels = append(labels, n)
		}
		if len(vals) == 0 {
			continue
		}
		p := plot.New()
		p.Title.Text = pn.title
		p.Y.Label.Text = pn.ylabel
		p.Y.Min = 0
		bars, err := plotter.NewBarChart(vals, vg.Points(22))
		if err != nil {
			return err
		}
		bars.LineStyle.Width = 0
		bars.Color = color.RGBA{R: 0x4c, G: 0x72, B: 0xb0, A: 255}
		p.Add(bars)
		p.NominalX(labels...)
		p.X.Tick.Label.Rotation = 0.5
		p.X.Tick.Label.XAlign = draw.XRight
		p.X.Tick.Label.YAlign = draw.YCenter
		plots = append(plots, p)
	}
	cols := 2
	rows := (len(plots) + cols - 1) / cols
	width, height := 9*vg.Inch, vg.Length(rows)*3*vg.Inch
	var c draw.Canvas
	var save func() error
	if filepath.Ext(path) == ".svg" {
		s := vgsvg.New(width, height)
		c = draw.New(s)
		save = func() error {
			f, err := os.Create(path)
			if err != nil {
				return err
			}
			if _, err := s.WriteTo(f); err != nil {
				f.Close()
				return err
			}
			return f.Close()
		}
	} else {
		img := vgimg.New(width, height)
		c = draw.New(img)
		save = func() error {
			f, err := os.Create(path)
			if err != nil {
				return err
			}
			if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
				f.Close()
				return err
			}
			return f.Close()
		}
	}
	c.SetColor(color.White)
	c.Fill(c.Rectangle.Path())
	t := draw.Tiles{Rows: rows, Cols: cols, PadX: vg.Millimeter * 4, PadY: vg.Millimeter * 4, PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 2}
	for i, p := range plots {
		p.Draw(t.At(c, i%cols, i/cols))
	}
	return save()
}
