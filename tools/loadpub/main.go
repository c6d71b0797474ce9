// Command loadpub joins a LiveKit room as N participants that publish pre-encoded media, looped and
// sent as-is: a VP8 simulcast camera from three IVF files (low.ivf, medium.ivf, high.ivf in
// --video-dir) and an Opus microphone from an Ogg file (with --turn, the participants speak in
// turn and send a silence file between their turns). Nothing is decoded or encoded, so a
// participant costs a fraction of a percent of a core and a load benchmark measures its subject,
// not its publishers. rapport.livekit.preencoded writes the files; rapport.livekit.load_publisher
// runs this program.
//
// Identities are <identity-prefix><index>, the index zero-padded to two digits (p00, p01, ...).
// stdout carries one line per event for a supervisor: "published <identity>" per participant,
// "ready <count>" once all have published, and at the end "stats {json}" (samples handed to the
// SDK per participant's LOW layer and microphone since ready, and the seconds since ready).
package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/livekit/protocol/livekit"
	protoLogger "github.com/livekit/protocol/logger"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/livekit/server-sdk-go/v2/pkg/oggreader"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
)

// clip is a file's samples, read once and shared read-only by every participant's track.
type clip struct {
	samples       []media.Sample
	width, height uint32 // video only
}

// loop hands out a clip's samples in order, from the start again after the last. The SDK's
// write worker paces them by each sample's Duration and stamps them, so a loop needs no
// timestamps of its own. The first sample of a video clip must be a keyframe (it is, as encoded).
type loop struct {
	lksdk.BaseSampleProvider
	clip *clip
	next int
	sent *atomic.Int64 // counts samples handed out, whether or not the layer is being sent
}

func (l *loop) NextSample(ctx context.Context) (media.Sample, error) {
	if err := ctx.Err(); err != nil {
		return media.Sample{}, io.EOF
	}
	s := l.clip.samples[l.next]
	l.next = (l.next + 1) % len(l.clip.samples)
	if l.sent != nil {
		l.sent.Add(1)
	}
	return s, nil
}

// turns hands out a microphone's share of a conversation in which count participants speak in
// turn: participant index speaks (the speech clip, looped where it left off) during
// [index*turn, (index+1)*turn) of every count*turn since epoch, and is silent (the silence clip)
// otherwise, as in a meeting where one person talks at a time. The clock is the wall clock from
// one epoch for all (the SDK's writer asks for each sample when it is due), so participants that
// joined at different moments still take turns without overlapping.
type turns struct {
	lksdk.BaseSampleProvider
	speech, silence *clip
	index, count    int
	turn            time.Duration
	epoch           time.Time
	next, quiet     int
	sent            *atomic.Int64
}

func (t *turns) NextSample(ctx context.Context) (media.Sample, error) {
	if err := ctx.Err(); err != nil {
		return media.Sample{}, io.EOF
	}
	var s media.Sample
	if int(time.Since(t.epoch)/t.turn)%t.count == t.index {
		s = t.speech.samples[t.next]
		t.next = (t.next + 1) % len(t.speech.samples)
	} else {
		s = t.silence.samples[t.quiet]
		t.quiet = (t.quiet + 1) % len(t.silence.samples)
	}
	t.sent.Add(1)
	return s, nil
}

// readIVF reads a whole IVF file. Durations come from the frame pts deltas in the header's
// timebase (rate at bytes 16-19, scale at 20-23, as ffmpeg writes them); the last frame repeats
// the previous delta, so the loop keeps the clip's frame rate.
func readIVF(path string) (*clip, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(data) < 32 || string(data[:4]) != "DKIF" || string(data[8:12]) != "VP80" {
		return nil, fmt.Errorf("%s: not a VP8 IVF file", path)
	}
	hdr := int(binary.LittleEndian.Uint16(data[6:8]))
	rate := binary.LittleEndian.Uint32(data[16:20])
	scale := binary.LittleEndian.Uint32(data[20:24])
	if rate == 0 || scale == 0 || hdr < 32 || hdr > len(data) {
		return nil, fmt.Errorf("%s: bad IVF header", path)
	}
	c := &clip{
		width:  uint32(binary.LittleEndian.Uint16(data[12:14])),
		height: uint32(binary.LittleEndian.Uint16(data[14:16])),
	}
	var pts []uint64
	for off := hdr; off < len(data); {
		if off+12 > len(data) {
			return nil, fmt.Errorf("%s: truncated frame header", path)
		}
		size := int(binary.LittleEndian.Uint32(data[off : off+4]))
		pts = append(pts, binary.LittleEndian.Uint64(data[off+4:off+12]))
		off += 12
		if off+size > len(data) {
			return nil, fmt.Errorf("%s: truncated frame", path)
		}
		c.samples = append(c.samples, media.Sample{Data: data[off : off+size]})
		off += size
	}
	if len(c.samples) < 2 {
		return nil, fmt.Errorf("%s: needs at least two frames", path)
	}
	tick := time.Duration(float64(time.Second) * float64(scale) / float64(rate))
	for i := range c.samples {
		j := min(i, len(pts)-2)
		c.samples[i].Duration = time.Duration(pts[j+1]-pts[j]) * tick
	}
	return c, nil
}

// readOgg reads every Opus packet of an Ogg file (the ID and comment headers are skipped).
func readOgg(path string) (*clip, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, _, err := oggreader.NewOggReader(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	c := &clip{}
	for {
		pkt, err := r.ReadPacket()
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		d, err := oggreader.ParsePacketDuration(pkt)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		c.samples = append(c.samples, media.Sample{Data: pkt, Duration: d})
	}
	if len(c.samples) == 0 {
		return nil, fmt.Errorf("%s: no Opus packets", path)
	}
	return c, nil
}

type layerFile struct {
	name    string
	quality livekit.VideoQuality
}

// The SDK sorts layers by width; the files must be three sizes of the same frames.
var layerFiles = []layerFile{
	{"low.ivf", livekit.VideoQuality_LOW},
	{"medium.ivf", livekit.VideoQuality_MEDIUM},
	{"high.ivf", livekit.VideoQuality_HIGH},
}

type participant struct {
	identity    string
	room        *lksdk.Room
	videoFrames atomic.Int64 // LOW layer samples
	audioFrames atomic.Int64
	base        [2]int64 // the two counts at "ready"
}

// newMic makes participant i's microphone; nil: no microphone.
type newMic func(i int, sent *atomic.Int64) lksdk.SampleProvider

func join(ctx context.Context, url, key, secret, room string, index int, identity string, video []*clip, mic newMic) (*participant, error) {
	p := &participant{identity: identity}
	r, err := lksdk.ConnectToRoom(url, lksdk.ConnectInfo{
		APIKey:              key,
		APISecret:           secret,
		RoomName:            room,
		ParticipantIdentity: identity,
		ParticipantName:     identity,
	}, lksdk.NewRoomCallback(), lksdk.WithAutoSubscribe(false))
	if err != nil {
		return nil, fmt.Errorf("%s: join: %w", identity, err)
	}
	p.room = r
	fail := func(err error) (*participant, error) {
		r.Disconnect()
		return nil, fmt.Errorf("%s: %w", identity, err)
	}
	vp8 := webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}
	var tracks []*lksdk.LocalTrack
	for i, lf := range layerFiles {
		c := video[i]
		t, err := lksdk.NewLocalTrack(vp8, lksdk.WithSimulcast(identity+"-camera", &livekit.VideoLayer{
			Quality: lf.quality, Width: c.width, Height: c.height,
		}))
		if err != nil {
			return fail(err)
		}
		var sent *atomic.Int64
		if lf.quality == livekit.VideoQuality_LOW {
			sent = &p.videoFrames
		}
		// Writing starts when the track is bound to the peer connection.
		if err := t.StartWrite(&loop{clip: c, sent: sent}, nil); err != nil {
			return fail(err)
		}
		tracks = append(tracks, t)
	}
	high := video[len(video)-1]
	if _, err := r.LocalParticipant.PublishSimulcastTrack(tracks, &lksdk.TrackPublicationOptions{
		Name: "camera", Source: livekit.TrackSource_CAMERA,
		VideoWidth: int(high.width), VideoHeight: int(high.height),
	}); err != nil {
		return fail(fmt.Errorf("publish camera: %w", err))
	}
	if mic != nil {
		opus := webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}
		t, err := lksdk.NewLocalTrack(opus)
		if err != nil {
			return fail(err)
		}
		if err := t.StartWrite(mic(index, &p.audioFrames), nil); err != nil {
			return fail(err)
		}
		if _, err := r.LocalParticipant.PublishTrack(t, &lksdk.TrackPublicationOptions{
			Name: "microphone", Source: livekit.TrackSource_MICROPHONE,
		}); err != nil {
			return fail(fmt.Errorf("publish microphone: %w", err))
		}
	}
	return p, ctx.Err()
}

func main() {
	url := flag.String("url", "", "LiveKit server URL (ws://...)")
	key := flag.String("api-key", "", "API key")
	secret := flag.String("api-secret", "", "API secret")
	room := flag.String("room", "", "room to join")
	count := flag.Int("count", 1, "participants to publish")
	prefix := flag.String("identity-prefix", "p", "identities are this prefix and a two-digit index")
	videoDir := flag.String("video-dir", "", "folder with low.ivf, medium.ivf, high.ivf (VP8)")
	audioPath := flag.String("audio", "", "Ogg Opus file for the microphone (none if empty)")
	turn := flag.Duration("turn", 0, "participants speak in turn, this long each, silent otherwise (needs --silence; 0: all speak at once)")
	silencePath := flag.String("silence", "", "Ogg Opus file of silence, for --turn")
	duration := flag.Duration("duration", 0, "leave after this long (0: on SIGINT or SIGTERM)")
	verbose := flag.Bool("v", false, "SDK logs at info level (default: warnings and errors)")
	flag.Parse()
	if *url == "" || *key == "" || *secret == "" || *room == "" || *videoDir == "" || *count < 1 {
		fmt.Fprintln(os.Stderr, "loadpub: --url, --api-key, --api-secret, --room, --video-dir and --count >= 1 are required")
		os.Exit(2)
	}
	if *turn < 0 || (*turn > 0 && (*silencePath == "" || *audioPath == "")) {
		fmt.Fprintln(os.Stderr, "loadpub: --turn needs --audio and --silence, and must not be negative")
		os.Exit(2)
	}
	level := "warn"
	if *verbose {
		level = "info"
	}
	protoLogger.InitFromConfig(&protoLogger.Config{Level: level}, "loadpub")
	lksdk.SetLogger(protoLogger.GetLogger())

	var video []*clip
	for _, lf := range layerFiles {
		c, err := readIVF(filepath.Join(*videoDir, lf.name))
		if err != nil {
			fmt.Fprintln(os.Stderr, "loadpub:", err)
			os.Exit(1)
		}
		video = append(video, c)
	}
	var mic newMic
	if *audioPath != "" {
		audio, err := readOgg(*audioPath)
		if err != nil {
			fmt.Fprintln(os.Stderr, "loadpub:", err)
			os.Exit(1)
		}
		mic = func(_ int, sent *atomic.Int64) lksdk.SampleProvider { return &loop{clip: audio, sent: sent} }
		if *turn > 0 {
			silence, err := readOgg(*silencePath)
			if err != nil {
				fmt.Fprintln(os.Stderr, "loadpub:", err)
				os.Exit(1)
			}
			n, d, epoch := *count, *turn, time.Now()
			mic = func(i int, sent *atomic.Int64) lksdk.SampleProvider {
				return &turns{speech: audio, silence: silence, index: i, count: n, turn: d, epoch: epoch, sent: sent}
			}
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}

	var out sync.Mutex // one writer per stdout line
	say := func(format string, a ...any) {
		out.Lock()
		defer out.Unlock()
		fmt.Printf(format+"\n", a...)
	}
	people := make([]*participant, *count)
	errs := make([]error, *count)
	var wg sync.WaitGroup
	for i := range *count {
		wg.Add(1)
		go func() {
			defer wg.Done()
			identity := fmt.Sprintf("%s%02d", *prefix, i)
			// A join can fail under load (the SFU busy with 60 others): two more tries, a second apart.
			for try := 1; ; try++ {
				people[i], errs[i] = join(ctx, *url, *key, *secret, *room, i, identity, video, mic)
				if errs[i] == nil || try == 3 || ctx.Err() != nil {
					break
				}
				fmt.Fprintf(os.Stderr, "loadpub: %v (try %d of 3)\n", errs[i], try)
				time.Sleep(time.Second)
			}
			if errs[i] == nil {
				say("published %s", identity)
			}
		}()
	}
	wg.Wait()
	leave := func() {
		var wg sync.WaitGroup
		for _, p := range people {
			if p != nil {
				wg.Add(1)
				go func() { defer wg.Done(); p.room.Disconnect() }()
			}
		}
		wg.Wait()
	}
	if err := errors.Join(errs...); err != nil {
		leave()
		fmt.Fprintln(os.Stderr, "loadpub:", err)
		os.Exit(1)
	}
	for _, p := range people {
		p.base = [2]int64{p.videoFrames.Load(), p.audioFrames.Load()}
	}
	say("ready %d", *count)
	ready := time.Now()
	<-ctx.Done()
	seconds := time.Since(ready).Seconds()
	leave()
	stats := map[string]any{"seconds": seconds, "video_frames": map[string]int64{}, "audio_frames": map[string]int64{}}
	for _, p := range people {
		stats["video_frames"].(map[string]int64)[p.identity] = p.videoFrames.Load() - p.base[0]
		stats["audio_frames"].(map[string]int64)[p.identity] = p.audioFrames.Load() - p.base[1]
	}
	line, _ := json.Marshal(stats)
	say("stats %s", line)
}
