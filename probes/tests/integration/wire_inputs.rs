//! Property tests: arbitrary playlists through the puller's m3u8 handling never panic (the fuzz corpora's inputs run here too).
