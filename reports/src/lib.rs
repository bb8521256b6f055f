//! Records journal, Polars aggregation, plots and report writers (HTML, JUnit, Markdown, JSON).
