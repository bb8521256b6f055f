//! A hostile orchestrator against the broadcaster: ticket params that cost unbounded work, rendition URLs that point elsewhere.
