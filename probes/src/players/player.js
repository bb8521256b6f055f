// lpt's browser player: hls.js plays one stream in this tab and every thing a viewer would notice
// is queued for lpt, which drains the queue over the DevTools protocol (`lptDrain()`).
//
// The page reads the frame stamp lpt's publisher draws into every source frame (a band of
// black and white cells across the bottom eighth of the picture, see reference-transcoder's
// stamp.rs) from frames as they are shown, so lpt can time a frame from its send to its display.
// The reader below is that module's reader, on the canvas's RGB instead of the decoder's luma.
(() => {
  "use strict";
  const params = new URLSearchParams(location.search);
  const source = params.get("src");
  const stampEveryMs = Number(params.get("stamp_ms") || 1000);
  const queue = [];
  const push = (event) => {
    event.t = Date.now();
    queue.push(event);
  };
  window.lptDrain = () => queue.splice(0, queue.length);

  const video = document.getElementById("video");
  // The rendition on screen (`<height>p` of the shown frames), and the level hls.js chose.
  let rendition = null;
  let levelName = null;
  let stallStarted = null;
  let firstFrame = false;
  let failed = false;
  window.lptTotals = () => {
    const quality = video.getVideoPlaybackQuality();
    return {
      decoded: quality.totalVideoFrames,
      dropped: quality.droppedVideoFrames,
      stalled_ms: stallStarted === null ? null : performance.now() - stallStarted,
      rendition,
      first_frame: firstFrame,
      failed,
    };
  };
  const fail = (error) => {
    if (!failed) {
      failed = true;
      push({ kind: "failed", error });
    }
  };

  if (!window.Hls || !Hls.isSupported()) {
    fail("hls.js cannot play here: " + (window.Hls ? "no MediaSource" : "hls.js did not load"));
    return;
  }
  const started = performance.now();
  const hls = new Hls({ liveDurationInfinity: true });
  window.lptHls = hls;
  hls.on(Hls.Events.LEVEL_SWITCHED, (_, data) => {
    const level = hls.levels[data.level];
    const name = level && level.height ? level.height + "p" : "level " + data.level;
    if (levelName !== null && name !== levelName) {
      push({ kind: "level_switch", rendition: name, from: levelName });
    }
    levelName = name;
  });
  hls.on(Hls.Events.ERROR, (_, data) => {
    if (!data.fatal) {
      return;
    }
    let error = data.type + ": " + data.details;
    if (data.response && data.response.code) {
      error += " (HTTP " + data.response.code + ")";
    }
    if (data.error && data.error.message) {
      error += ": " + data.error.message;
    }
    if (data.url) {
      error += " at " + data.url;
    }
    fail(error);
    hls.destroy();
  });
  hls.on(Hls.Events.MANIFEST_PARSED, () => {
    video.play().catch((e) => fail("video.play(): " + e.message));
  });
  hls.loadSource(source);
  hls.attachMedia(video);

  // A stall is the player waiting for data after playback started; it is reported when playback
  // resumes (an open one is read by lptTotals when lpt stops the player).
  video.addEventListener("waiting", () => {
    if (firstFrame && stallStarted === null) {
      stallStarted = performance.now();
    }
  });
  video.addEventListener("playing", () => {
    if (stallStarted !== null) {
      push({ kind: "stall", stall_ms: performance.now() - stallStarted, rendition });
      stallStarted = null;
    }
  });

  const canvas = document.createElement("canvas");
  const context = canvas.getContext("2d", { willReadFrequently: true });
  let lastStampRead = -Infinity;
  const onFrame = (now, frame) => {
    const shownAt = performance.timeOrigin + frame.presentationTime;
    // What the viewer sees names the rendition: a media playlist alone has no level heights.
    rendition = frame.height + "p";
    if (!firstFrame) {
      firstFrame = true;
      push({ kind: "first_frame", ttff_ms: frame.presentationTime - started, rendition });
    }
    if (frame.presentationTime - lastStampRead >= stampEveryMs) {
      lastStampRead = frame.presentationTime;
      const stamp = readStamp(frame.width, frame.height);
      if (stamp) {
        push({ kind: "frame", stream_id: stamp.streamId, frame: stamp.frame, shown_at: shownAt, rendition });
      } else {
        push({ kind: "unstamped", rendition });
      }
    }
    video.requestVideoFrameCallback(onFrame);
  };
  video.requestVideoFrameCallback(onFrame);

  // The stamp's geometry and coding: reference-transcoder/src/stamp.rs.
  const COLUMNS = 32;
  const ROWS = 3;
  const BAND = 0.125;
  const PAYLOAD_BITS = 80;
  const MARKER = [true, false, true, false];
  const syncCell = (col) =>
    col === 0 || col === COLUMNS - 2 ? true : col === 1 || col === COLUMNS - 1 ? false : null;
  const crc16 = (bytes) => {
    let crc = 0xffff;
    for (const b of bytes) {
      crc ^= b << 8;
      for (let k = 0; k < 8; k++) {
        crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
      }
    }
    return crc;
  };
  function readStamp(width, height) {
    if (width < 64 || height < 32) {
      return null;
    }
    const top = height - Math.round(height * BAND);
    const band = height - top;
    canvas.width = width;
    canvas.height = band;
    context.drawImage(video, 0, top, width, band, 0, 0, width, band);
    const pixels = context.getImageData(0, 0, width, band).data;
    const luma = (x, y) => {
      const i = (y * width + x) * 4;
      return 0.299 * pixels[i] + 0.587 * pixels[i + 1] + 0.114 * pixels[i + 2];
    };
    const cellMean = (row, col) => {
      let x0 = Math.floor((col * width) / COLUMNS);
      let x1 = Math.floor(((col + 1) * width) / COLUMNS);
      let y0 = Math.floor((row * band) / ROWS);
      let y1 = Math.floor(((row + 1) * band) / ROWS);
      const qx = Math.floor((x1 - x0) / 4);
      const qy = Math.floor((y1 - y0) / 4);
      x0 += qx;
      x1 = Math.max(x1 - qx, x0 + 1);
      y0 += qy;
      y1 = Math.max(y1 - qy, y0 + 1);
      let sum = 0;
      let n = 0;
      for (let y = y0; y < Math.min(y1, band); y++) {
        for (let x = x0; x < Math.min(x1, width); x++) {
          sum += luma(x, y);
          n++;
        }
      }
      return sum / Math.max(n, 1);
    };
    const levels = [];
    let white = 0;
    let black = 0;
    let n = 0;
    for (let row = 0; row < ROWS; row++) {
      const rowLevels = [];
      for (let col = 0; col < COLUMNS; col++) {
        const v = cellMean(row, col);
        rowLevels.push(v);
        const sync = syncCell(col);
        if (sync === true) {
          white += v;
          n += 0.5;
        } else if (sync === false) {
          black += v;
          n += 0.5;
        }
      }
      levels.push(rowLevels);
    }
    white /= n;
    black /= n;
    const contrast = white - black;
    if (contrast < 60) {
      return null;
    }
    const mid = (white + black) / 2;
    const margin = contrast * 0.2;
    const bits = [];
    for (const row of levels) {
      for (let col = 0; col < COLUMNS; col++) {
        const v = row[col];
        const value = v >= mid + margin ? true : v <= mid - margin ? false : null;
        if (value === null) {
          return null;
        }
        const sync = syncCell(col);
        if (sync === null) {
          bits.push(value);
        } else if (sync !== value) {
          return null;
        }
      }
    }
    for (let k = 0; k < MARKER.length; k++) {
      if (bits[PAYLOAD_BITS + k] !== MARKER[k]) {
        return null;
      }
    }
    const bytes = new Array(10).fill(0);
    for (let k = 0; k < PAYLOAD_BITS; k++) {
      if (bits[k]) {
        bytes[k >> 3] |= 1 << (7 - (k & 7));
      }
    }
    if (crc16(bytes.slice(0, 8)) !== ((bytes[8] << 8) | bytes[9])) {
      return null;
    }
    const word = (i) => ((bytes[i] << 24) | (bytes[i + 1] << 16) | (bytes[i + 2] << 8) | bytes[i + 3]) >>> 0;
    return { streamId: word(0), frame: word(4) };
  }
})();
