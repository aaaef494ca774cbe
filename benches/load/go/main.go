// The Go side of the load benchmark (docs/benchmarks.md, "Under load"):
// net/http serving the same tiny body as the Rust servers, with a goroutine
// calling runtime.ReadMemStats every 5 ms and timing each call. ReadMemStats
// stops the world (stopTheWorld, then startTheWorld) to read a consistent
// snapshot, so its duration is Go's stop-the-world pause as a Go program
// sees it: the counterpart of a stop_machine round trip.
//
// Standard library only. Run by scripts/load-bench:
//
//	GOMAXPROCS=2 loadbench-go -port 0 -duration 60s -patch 5ms -out go.json
//
// It prints "listening on ADDR", serves until SIGTERM or SIGINT or until
// -duration has passed, then writes its samples as JSON to -out.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// version plays the Rust servers' config: the body is built from it on
// every request, and the pauser bumps it after every ReadMemStats.
var version atomic.Uint64

// stops holds one entry per ReadMemStats call, in columns.
type stops struct {
	AtUnixNs []int64 `json:"at_unix_ns"`
	TotalNs  []int64 `json:"total_ns"`
}

type results struct {
	Server          string  `json:"server"`
	Gomaxprocs      int     `json:"gomaxprocs"`
	GoVersion       string  `json:"go_version"`
	PatchIntervalNs int64   `json:"patch_interval_ns"`
	StartedUnixNs   int64   `json:"started_unix_ns"`
	EndedUnixNs     int64   `json:"ended_unix_ns"`
	TornReads       int     `json:"torn_reads"`
	StopErrors      int     `json:"stop_errors"`
	NumGC           uint32  `json:"num_gc"`
	GCPausesNs      []int64 `json:"gc_pauses_ns"`
	Stops           stops   `json:"stops"`
}

func handler(w http.ResponseWriter, r *http.Request) {
	v := version.Load()
	h := w.Header()
	h["Content-Type"] = []string{"text/plain; charset=utf-8"}
	body := fmt.Appendf(make([]byte, 0, 32), "a=%010d b=%010d\n", v, v)
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.Write(body)
}

// pauser calls ReadMemStats every interval until done is closed.
func pauser(interval time.Duration, done <-chan struct{}, mu *sync.Mutex, s *stops) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var m runtime.MemStats
	for {
		select {
		case <-done:
			return
		case <-tick.C:
		}
		at := time.Now()
		runtime.ReadMemStats(&m)
		d := time.Since(at)
		version.Add(1)
		mu.Lock()
		s.AtUnixNs = append(s.AtUnixNs, at.UnixNano())
		s.TotalNs = append(s.TotalNs, d.Nanoseconds())
		mu.Unlock()
	}
}

func main() {
	port := flag.Int("port", 0, "port on 127.0.0.1 (0: any free port)")
	duration := flag.Duration("duration", 60*time.Second, "how long to serve at most")
	interval := flag.Duration("patch", 5*time.Millisecond, "time between two ReadMemStats calls (0: none)")
	out := flag.String("out", "", "where to write the JSON results")
	flag.Parse()

	started := time.Now()
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", *port))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("listening on %s (go, GOMAXPROCS=%d)\n", ln.Addr(), runtime.GOMAXPROCS(0))
	os.Stdout.Sync()

	mux := http.NewServeMux()
	mux.HandleFunc("/", handler)
	go http.Serve(ln, mux)

	var mu sync.Mutex
	var s stops
	done := make(chan struct{})
	if *interval > 0 {
		go pauser(*interval, done, &mu, &s)
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-sig:
	case <-time.After(*duration):
	}
	close(done)
	ended := time.Now()

	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	mu.Lock()
	r := results{
		Server:          "go",
		Gomaxprocs:      runtime.GOMAXPROCS(0),
		GoVersion:       runtime.Version(),
		PatchIntervalNs: interval.Nanoseconds(),
		StartedUnixNs:   started.UnixNano(),
		EndedUnixNs:     ended.UnixNano(),
		NumGC:           m.NumGC,
		Stops:           s,
	}
	// The last (up to 256) GC pauses, oldest first.
	n := m.NumGC
	if n > 256 {
		n = 256
	}
	for i := uint32(0); i < n; i++ {
		r.GCPausesNs = append(r.GCPausesNs, int64(m.PauseNs[(m.NumGC-n+i)%256]))
	}
	mu.Unlock()
	total := append([]int64(nil), s.TotalNs...)
	fmt.Fprintf(os.Stderr, "go: %d ReadMemStats calls, %d GCs\n", len(total), m.NumGC)
	if *out != "" {
		data, err := json.Marshal(r)
		if err != nil {
			log.Fatal(err)
		}
		if err := os.WriteFile(*out, append(data, '\n'), 0o644); err != nil {
			log.Fatal(err)
		}
	}
}
