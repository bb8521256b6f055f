//! Property tests: arbitrary bytes through the broadcaster's RTMP, FLV, TS and SPS parsers never panic (the fuzz corpora's inputs run here too).
