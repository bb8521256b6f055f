#!/usr/bin/env bash
# Writes the seed inputs the committed corpora were grown from into fuzz/seeds/<target>/
# (not committed: the minimised corpora under fuzz/corpus/ are). Needs ffmpeg, python3 and,
# for rtmp_chunks, a built `lpt` binary (LPT=path, default: the ci profile's build).
# The protobuf header seeds come from the protocol crate's ignored test `make_header_seeds`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$here/seeds
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"; [ -n "${bpid:-}" ] && kill "$bpid" 2>/dev/null || true' EXIT
mkdir -p "$out"/{sps,flv_tags,ts_demux,m3u8,multipart_results,scenario_toml,rtmp_chunks}
ff() { ffmpeg -hide_banner -loglevel error -y "$@"; }
src() { echo "-f lavfi -i testsrc2=size=$1:rate=${2:-10}"; }
tone="-f lavfi -i sine=frequency=440:sample_rate=44100"

# --- FLV files (flv_tags) and raw H.264 (sps) ---
ff $(src 64x36) $tone -t 1.5 -c:v libx264 -preset ultrafast -profile:v baseline -g 5 -c:a aac -b:a 32k -f flv "$out/flv_tags/baseline_aac.flv"
ff $(src 96x54) -t 1.5 -c:v libx264 -preset ultrafast -profile:v high -bf 2 -g 8 -f flv "$out/flv_tags/high_bframes.flv"
ff $(src 80x48) $tone -t 1 -c:v libx264 -preset ultrafast -g 1 -c:a aac -ac 1 -ar 22050 -f flv "$out/flv_tags/all_keyframes_mono.flv"
ff $(src 66x38 15) -t 1 -c:v libx264 -preset ultrafast -profile:v main -x264-params nal-hrd=cbr:bitrate=50:vbv-maxrate=50:vbv-bufsize=50 -f flv "$out/flv_tags/main_cropped_cbr.flv"
# A resolution change mid-stream: two files' tags back to back (second sequence header).
python3 - "$out/flv_tags/high_bframes.flv" "$out/flv_tags/baseline_aac.flv" "$out/flv_tags/resolution_change.flv" <<'EOF'
import struct, sys
def tags(path):
    d = open(path, 'rb').read()
    pos = struct.unpack('>I', d[5:9])[0] + 4
    while pos + 11 <= len(d):
        size = int.from_bytes(d[pos+1:pos+4], 'big')
        yield d[pos:pos+11+size]
        pos += 11 + size + 4
out = bytearray(open(sys.argv[1], 'rb').read()[:13])
last = 0
for i, path in enumerate(sys.argv[1:3]):
    for t in tags(path):
        ts = int.from_bytes(t[4:7], 'big') | t[7] << 24
        ts += 2000 * i
        t = bytearray(t); t[4:7] = (ts & 0xffffff).to_bytes(3, 'big'); t[7] = ts >> 24
        out += t + struct.pack('>I', len(t))
open(sys.argv[3], 'wb').write(out)
EOF
for spec in "baseline 64x36" "main 320x180" "high 426x240" "high 1920x1080" "high444 100x60" "high10 130x74"; do
  set -- $spec
  pix=yuv420p; [ "$1" = high444 ] && pix=yuv444p; [ "$1" = high10 ] && pix=yuv420p10le
  extra=""; [ "$1" = main ] && extra="-flags +ildct+ilme -x264-params interlaced=1"
  ff $(src "$2") -frames:v 1 -pix_fmt $pix -c:v libx264 -preset ultrafast -profile:v "$1" $extra -f h264 "$tmp/$1_$2.h264" || continue
  python3 - "$tmp/$1_$2.h264" "$out/sps/$1_$2" <<'EOF'
import re, sys
d = open(sys.argv[1], 'rb').read()
for nal in re.split(b'\x00\x00\x00\x01|\x00\x00\x01', d):
    if nal and nal[0] & 0x1f == 7:
        open(sys.argv[2], 'wb').write(nal); break
EOF
done
# x264's scaling matrices (the SPS with scaling lists).
ff $(src 64x36) -frames:v 1 -c:v libx264 -profile:v high -x264-params cqm=jvt -f h264 "$tmp/cqm.h264"
python3 - "$tmp/cqm.h264" "$out/sps/high_cqm" <<'EOF'
import re, sys
d = open(sys.argv[1], 'rb').read()
for nal in re.split(b'\x00\x00\x00\x01|\x00\x00\x01', d):
    if nal and nal[0] & 0x1f == 7:
        open(sys.argv[2], 'wb').write(nal); break
EOF

# --- Segments (ts_demux) ---
ff $(src 64x36) $tone -t 1 -c:v libx264 -preset ultrafast -g 5 -c:a aac -b:a 32k -f mpegts "$out/ts_demux/h264_aac.ts"
ff $(src 48x32) -t 0.5 -c:v libx264 -preset ultrafast -bf 2 -f mpegts "$out/ts_demux/h264_bframes.ts"
ff $(src 64x36) -t 0.4 -c:v libx265 -preset ultrafast -x265-params log-level=none -f mpegts "$out/ts_demux/hevc.ts"
ff $(src 64x36) -t 0.4 -c:v mpeg2video -f mpegts "$out/ts_demux/mpeg2.ts"
ff $(src 64x36) -t 0.4 -c:v libx264 -preset ultrafast -f mp4 -movflags frag_keyframe+empty_moov "$out/ts_demux/fragmented.mp4"
ff $tone -t 0.3 -c:a aac -f mpegts "$out/ts_demux/audio_only.ts"
head -c 1880 "$out/ts_demux/h264_aac.ts" > "$out/ts_demux/first_ten_packets.ts"

# --- Playlists (m3u8): main playlist, NUL, the playlist every other URL serves ---
m() { printf '%b' "$2" > "$out/m3u8/$1"; }
media='#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:7\n#EXTINF:2.000,\n7.ts\n#EXTINF:2.000,\n8.ts\n#EXTINF:1.500,\n9.ts\n'
master='#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=600000,RESOLUTION=426x240\nk/P240p30fps16x9.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=1200000,RESOLUTION=640x360\nk/P360p30fps16x9.m3u8\n'
m media_live "$media"
m media_ended "${media}#EXT-X-ENDLIST\n"
m master_then_media "${master}\0${media}"
m master_then_ended "${master}\0${media}#EXT-X-ENDLIST\n"
m master_of_masters "${master}"
m discontinuity "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-DISCONTINUITY-SEQUENCE:3\n#EXTINF:4,\na.ts\n#EXT-X-DISCONTINUITY\n#EXTINF:3.2,title\nhttp://192.0.2.7/b.ts?x=1\n"
m fmp4_byterange "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:6\n#EXT-X-MAP:URI=\"init.mp4\"\n#EXT-X-BYTERANGE:1000@0\n#EXTINF:6.0,\nall.mp4\n#EXT-X-BYTERANGE:800\n#EXTINF:6.0,\nall.mp4\n#EXT-X-ENDLIST\n"
m master_media_groups "#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"en\",URI=\"a.m3u8\"\n#EXT-X-STREAM-INF:BANDWIDTH=1,CODECS=\"avc1.4d401e\",AUDIO=\"a\"\nhttps://192.0.2.1/v.m3u8\n#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=1,URI=\"i.m3u8\"\n\0${media}"
m bom_and_spaces "\xef\xbb\xbf  \n${media}"
m html "<html><body>not a playlist</body></html>"
m no_target_duration "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:1\n#EXTINF:2,\n1.ts\n"
m lpt_broadcaster "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-STREAM-INF:PROGRAM-ID=0,BANDWIDTH=4000000,RESOLUTION=1280x720\nstream/s/source.m3u8\n#EXT-X-STREAM-INF:PROGRAM-ID=0,BANDWIDTH=400000,RESOLUTION=426x240\nstream/s/P240p30fps16x9.m3u8\n\0#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-TARGETDURATION:3\n#EXTINF:2.000,\n0.ts\n#EXT-X-DISCONTINUITY\n#EXTINF:2.033,\n1.ts\n"

# --- /transcodeResults posts (multipart_results): content type line, then body ---
b=2d3a8f1e9c0b47d6a5e4f3c2b1a09876
p() { printf '%b' "$2" > "$out/multipart_results/$1"; }
p go_two_renditions "multipart/mixed; boundary=$b\n--$b\r\nContent-Length: 4\r\nContent-Type: video/mp2t\r\nPixels: 1382400\r\n\r\n\x47\x40\x00\x10\r\n--$b\r\nContent-Length: 4\r\nContent-Type: video/mp2t\r\nPixels: 460800\r\n\r\n\x47\x41\x00\x10\r\n--$b--\r\n"
p with_phash "multipart/mixed; boundary=$b\n--$b\r\nContent-Type: video/mp2t\r\nPixels: 7\r\n\r\nts\r\n--$b\r\nContent-Type: application/octet-stream\r\n\r\nhash\r\n--$b--\r\n"
p quoted_boundary "Multipart/Mixed; Boundary=\"a b\\\\\"c\"; x=1\n--a b\"c\r\nPixels: 1\r\n\r\n\r\n--a b\"c--\r\n"
p error_report "livepeer/transcoding-error\nTranscodeSegment: ffmpeg exited 1"
p no_headers_part "multipart/mixed; boundary=x\n--x\r\n\r\nbody\r\n--x--"
p unterminated "multipart/mixed; boundary=x\n--x\r\nPixels: 1\r\n\r\nno end"

# --- Scenarios (scenario_toml) ---
for f in "$here"/../scenarios/*.toml "$here"/../scenarios/faults/*.toml; do
  cp "$f" "$out/scenario_toml/$(basename "$(dirname "$f")")_$(basename "$f")"
done

# --- RTMP publishers (rtmp_chunks): what ffmpeg sends to a broadcaster, recorded by a proxy ---
LPT=${LPT:-$HOME/.cache/lpt-target/ci/lpt}
if [ -x "$LPT" ]; then
  cat > "$tmp/b.toml" <<EOF
rtmp_addr = "127.0.0.1:19351"
http_addr = "127.0.0.1:19352"
ladder = ""
EOF
  "$LPT" node broadcaster -q --config "$tmp/b.toml" > "$tmp/b.log" 2>&1 & bpid=$!
  sleep 2
  record() { # name, ffmpeg output args...
    local name=$1; shift
    python3 - "$tmp/$name.raw" <<'EOF' & local ppid=$!
import socket, sys, threading
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(('127.0.0.1', 19350)); ls.listen(1)
c, _ = ls.accept(); s = socket.create_connection(('127.0.0.1', 19351))
rec = open(sys.argv[1], 'wb')
def up():
    while (d := c.recv(65536)):
        rec.write(d); s.sendall(d)
    s.shutdown(socket.SHUT_WR)
def down():
    while (d := s.recv(65536)):
        c.sendall(d)
    c.close()
t = threading.Thread(target=up); t.start(); down(); t.join(); rec.close()
EOF
    sleep 0.5
    ff "$@" || true
    wait $ppid || true
    # flag 0: the bytes as sent (handshake included); flag 1: the chunk stream after C0+C1+C2.
    { printf '\x00'; cat "$tmp/$name.raw"; } > "$out/rtmp_chunks/${name}_raw"
    { printf '\x01'; tail -c +3074 "$tmp/$name.raw"; } > "$out/rtmp_chunks/${name}_chunks"
  }
  record av $(src 64x36) $tone -t 1.5 -c:v libx264 -preset ultrafast -g 5 -c:a aac -b:a 32k -f flv rtmp://127.0.0.1:19350/live/seed1
  record video_only $(src 48x32) -t 1 -c:v libx264 -preset ultrafast -g 3 -f flv rtmp://127.0.0.1:19350/seed2
  record app_only_key $(src 48x32) -t 0.5 -c:v libx264 -preset ultrafast -g 3 -f flv "rtmp://127.0.0.1:19350/live/seed3?token=x"
  kill "$bpid"; bpid=
fi
# Just a handshake, and a handshake then garbage.
{ printf '\x01'; } > "$out/rtmp_chunks/handshake_only"
{ printf '\x01\x03\x00\x00\x00\x00\x01\x05\x14\x00\x00\x00\x00\x02\x00\x07connect'; } > "$out/rtmp_chunks/truncated_connect"
ls -1 "$out"/* | wc -l
