// Command lpt-llhls serves one live stream as Low-Latency HLS, packaged by gohlslib's muxer
// (github.com/bluenviron/gohlslib v1.4.0, the LL-HLS packager MediaMTX is built on), so that
// lpt's HLS puller is tested against a real LL-HLS server: fMP4 parts, EXT-X-PRELOAD-HINT,
// EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES and blocking playlist reloads (_HLS_msn, _HLS_part).
//
// It reads MPEG-TS (H.264 video, optional AAC audio) on stdin, as ffmpeg writes it with
// `-c copy -f mpegts pipe:1`, and serves on -listen: /index.m3u8 (the multivariant playlist),
// /stream.m3u8 (the media playlist), the init section, segments and parts, and /stats, the
// requests it has answered so far as JSON (how many playlist requests carried _HLS_msn is what a
// test asserts). It listens before the stream arrives, answering 404 until the muxer has its
// tracks, and announces its address as one line on stdout:
//
//	{"event":"ready","addr":"127.0.0.1:PORT"}
//
// When stdin ends it keeps serving what it has until SIGTERM or SIGINT, which exit 0: a player
// draining the last parts must not find the server gone.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/bluenviron/gohlslib"
	"github.com/bluenviron/gohlslib/pkg/codecs"
	"github.com/bluenviron/mediacommon/pkg/formats/mpegts"
)

// counts are the requests answered, by kind.
type counts struct {
	Playlist         atomic.Uint64 `json:"-"`
	BlockingPlaylist atomic.Uint64 `json:"-"`
	Part             atomic.Uint64 `json:"-"`
	Segment          atomic.Uint64 `json:"-"`
}

func (c *counts) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]uint64{
		"playlist_requests":          c.Playlist.Load(),
		"blocking_playlist_requests": c.BlockingPlaylist.Load(),
		"part_requests":              c.Part.Load(),
		"segment_requests":           c.Segment.Load(),
	})
}

// server hands requests to the muxer once the stream's tracks are known.
type server struct {
	mu     sync.RWMutex
	muxer  *gohlslib.Muxer
	counts counts
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/stats" {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(&s.counts)
		return
	}
	name := r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]
	switch {
	case strings.HasSuffix(name, ".m3u8"):
		s.counts.Playlist.Add(1)
		if r.URL.Query().Has("_HLS_msn") {
			s.counts.BlockingPlaylist.Add(1)
		}
	case strings.Contains(name, "_part"):
		s.counts.Part.Add(1)
	case strings.Contains(name, "_seg"):
		s.counts.Segment.Add(1)
	}
	s.mu.RLock()
	muxer := s.muxer
	s.mu.RUnlock()
	if muxer == nil {
		http.NotFound(w, r)
		return
	}
	muxer.Handle(w, r)
}

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "loopback host:port to serve on (port 0 picks a free one)")
	segment := flag.Duration("segment", time.Second, "minimum segment duration (a segment also waits for a key frame)")
	part := flag.Duration("part", 200*time.Millisecond, "minimum part duration")
	flag.Parse()
	if err := run(*listen, *segment, *part); err != nil {
		fmt.Fprintf(os.Stderr, "lpt-llhls: %v\n", err)
		os.Exit(1)
	}
}

func run(listen string, segment, part time.Duration) error {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("-listen %q: %w", listen, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-listen %q: not a loopback IP address", listen)
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)

	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	s := &server{}
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	ready, err := json.Marshal(map[string]string{"event": "ready", "addr": ln.Addr().String()})
	if err != nil {
		return err
	}
	fmt.Println(string(ready))

	ingested := make(chan error, 1)
	go func() { ingested <- ingest(bufio.NewReaderSize(os.Stdin, 1<<20), s, segment, part) }()

	for {
		select {
		case err := <-served:
			return err
		case err := <-ingested:
			// The stream ended (or broke): what was packaged stays served.
			if err != nil {
				fmt.Fprintf(os.Stderr, "lpt-llhls: input: %v\n", err)
			}
			ingested = nil
		case <-stop:
			s.mu.RLock()
			if s.muxer != nil {
				s.muxer.Close()
			}
			s.mu.RUnlock()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		}
	}
}

// ingest reads the MPEG-TS stream, starts the muxer once its tracks are known and feeds it every
// access unit until the input ends.
func ingest(input io.Reader, s *server, segment, part time.Duration) error {
	reader, err := mpegts.NewReader(input)
	if err != nil {
		return fmt.Errorf("reading the MPEG-TS program: %w", err)
	}
	muxer := &gohlslib.Muxer{
		Variant:            gohlslib.MuxerVariantLowLatency,
		SegmentMinDuration: segment,
		PartMinDuration:    part,
	}
	// One clock for every track, from the first timestamp read, so they stay aligned.
	var clock *mpegts.TimeDecoder
	decode := func(pts int64) time.Duration {
		if clock == nil {
			clock = mpegts.NewTimeDecoder(pts)
		}
		return clock.Decode(pts)
	}
	for _, track := range reader.Tracks() {
		switch codec := track.Codec.(type) {
		case *mpegts.CodecH264:
			if muxer.VideoTrack != nil {
				continue
			}
			muxer.VideoTrack = &gohlslib.Track{Codec: &codecs.H264{}}
			reader.OnDataH26x(track, func(pts int64, _ int64, au [][]byte) error {
				return muxer.WriteH264(time.Now(), decode(pts), au)
			})
		case *mpegts.CodecMPEG4Audio:
			if muxer.AudioTrack != nil {
				continue
			}
			muxer.AudioTrack = &gohlslib.Track{Codec: &codecs.MPEG4Audio{Config: codec.Config}}
			reader.OnDataMPEG4Audio(track, func(pts int64, aus [][]byte) error {
				return muxer.WriteMPEG4Audio(time.Now(), decode(pts), aus)
			})
		}
	}
	if muxer.VideoTrack == nil {
		return fmt.Errorf("the stream has no H.264 track")
	}
	if err := muxer.Start(); err != nil {
		return err
	}
	s.mu.Lock()
	s.muxer = muxer
	s.mu.Unlock()
	reader.OnDecodeError(func(err error) {
		fmt.Fprintf(os.Stderr, "lpt-llhls: decode: %v\n", err)
	})
	for {
		if err := reader.Read(); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}
