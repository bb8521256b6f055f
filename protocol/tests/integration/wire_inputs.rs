//! Property tests: arbitrary Livepeer-Segment / Livepeer-Payment headers never panic the decoders (the fuzz corpora's inputs run here too).
