//! `medic logs`: log template mining for people and for benchmarks (docs/logs.md).
//!
//! `mine` prints the templates of a file (or standard input) with their counts, or one JSON
//! object per input line with the line's template as it is at the end of the input; `diff`
//! prints the templates that are new or spiking in one file against a baseline file, and the
//! stack traces of the newer file. Both stream: memory grows with the templates, not with the
//! lines (`mine --format json` spools 4 bytes per line to a deleted temporary file, since a
//! line's final template is known only at the end). Lines longer than [`MAX_LINE_BYTES`] are
//! mined on their first [`MAX_LINE_BYTES`]; bytes that are not UTF-8 are read as U+FFFD.

use anyhow::Context;
use medic_analysis::logs::{self, Miner, TemplateId, WindowCounts};
use medic_analysis::stack;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, IsTerminal, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Bytes of one line (or CSV record) that are read; the rest of the line is skipped.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// Progress is written to a terminal's stderr every this many lines (so never for small files).
const PROGRESS_EVERY: u64 = 1 << 20;

/// Lines handed to the stack-trace extractor at a time (see [`StackChunks`]).
const STACK_CHUNK_LINES: usize = 8192;

#[derive(clap::Subcommand)]
pub enum Action {
    /// Mine the templates of a log file and print them with their counts.
    Mine {
        /// The log file, one message per line; `-` for standard input.
        input: PathBuf,
        /// Output: a table of templates (human) or one JSON object per input line (json).
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        /// Read the input as CSV with a header and mine this column (e.g. loghub's Content).
        #[arg(long, value_name = "NAME")]
        column: Option<String>,
    },
    /// Print the templates that are new or spiking in NEW against OLD, and NEW's stack traces.
    Diff {
        /// The baseline: the same length of time before NEW.
        #[arg(long, value_name = "OLD")]
        baseline: PathBuf,
        /// The file to look at; `-` for standard input.
        input: PathBuf,
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        /// Read both inputs as CSV with a header and mine this column.
        #[arg(long, value_name = "NAME")]
        column: Option<String>,
        /// Templates shown at most.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Format {
    Human,
    Json,
}

pub fn run(action: Action) -> anyhow::Result<ExitCode> {
    match action {
        Action::Mine {
            input,
            format,
            column,
        } => mine(&input, format, column.as_deref()),
        Action::Diff {
            baseline,
            input,
            format,
            column,
            limit,
        } => diff(&baseline, &input, format, column.as_deref(), limit),
    }
}

fn mine(input: &Path, format: Format, column: Option<&str>) -> anyhow::Result<ExitCode> {
    let mut messages = Messages::open(input, column)?;
    let mut miner = Miner::new();
    let mut counts = WindowCounts::default();
    let mut spool = match format {
        Format::Json => Some(Spool::create()?),
        Format::Human => None,
    };
    let mut progress = Progress::new();
    while let Some(message) = messages.next_message()? {
        let id = miner.add(message);
        counts.add(id);
        if let Some(spool) = &mut spool {
            spool.push(id)?;
        }
        progress.tick(&miner);
    }
    progress.finish();
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    match spool {
        Some(spool) => write_lines(&miner, spool, &mut out)?,
        None => write_table(&miner, &counts, &mut out)?,
    }
    out.flush().context("writing standard output")?;
    Ok(ExitCode::SUCCESS)
}

/// One JSON object per input line, in input order.
fn write_lines(miner: &Miner, spool: Spool, out: &mut impl Write) -> anyhow::Result<()> {
    // Each id's final template, rendered once (ids of merged templates show the survivor).
    let mut rendered: HashMap<TemplateId, String> = HashMap::new();
    let mut reader = spool.into_reader()?;
    let mut line_number: u64 = 0;
    let mut bytes = [0u8; 4];
    loop {
        match reader.read_exact(&mut bytes) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(error) => return Err(error).context("reading the spooled template ids"),
        }
        line_number += 1;
        let id = miner.canonical(TemplateId(u32::from_le_bytes(bytes)));
        if let std::collections::hash_map::Entry::Vacant(entry) = rendered.entry(id) {
            entry.insert(serde_json::to_string(
                &miner.pattern(id).unwrap_or_default(),
            )?);
        }
        let pattern = rendered.get(&id).map_or("\"\"", String::as_str);
        writeln!(
            out,
            "{{\"line\":{line_number},\"template_id\":{},\"template\":{pattern}}}",
            id.0
        )
        .context("writing standard output")?;
    }
    Ok(())
}

/// The templates by count, most first, then by id.
fn write_table(miner: &Miner, counts: &WindowCounts, out: &mut impl Write) -> anyhow::Result<()> {
    let mut merged: std::collections::BTreeMap<TemplateId, u64> = Default::default();
    for (id, count) in counts.iter() {
        *merged.entry(miner.canonical(id)).or_default() += count;
    }
    let mut rows: Vec<(TemplateId, u64)> = merged.into_iter().collect();
    rows.sort_by(|left, right| right.1.cmp(&left.1).then(left.0.cmp(&right.0)));
    writeln!(out, "{} lines, {} templates\n", counts.total(), rows.len())?;
    writeln!(out, "{:>10}  {:>6}  template", "count", "id")?;
    for (id, count) in rows {
        let pattern = miner.pattern(id).unwrap_or_default();
        writeln!(out, "{count:>10}  {:>6}  {pattern}", id.0)?;
    }
    Ok(())
}

fn diff(
    baseline_path: &Path,
    input: &Path,
    format: Format,
    column: Option<&str>,
    limit: usize,
) -> anyhow::Result<ExitCode> {
    let mut miner = Miner::new();
    let mut baseline = WindowCounts::default();
    let mut progress = Progress::new();
    let mut messages = Messages::open(baseline_path, column)?;
    while let Some(message) = messages.next_message()? {
        baseline.add(miner.add(message));
        progress.tick(&miner);
    }
    let mut current = WindowCounts::default();
    let mut stacks = StackChunks::default();
    let mut messages = Messages::open(input, column)?;
    while let Some(message) = messages.next_message()? {
        current.add(miner.add(message));
        stacks.push(message);
        progress.tick(&miner);
    }
    progress.finish();
    let traces = stacks.finish();
    let changes: Vec<logs::TemplateChange> = logs::compare(&miner, &current, &baseline, limit)
        .into_iter()
        .filter(|change| change.new || change.spiking)
        .collect();
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    match format {
        Format::Json => {
            let document = serde_json::json!({
                "lines": current.total(),
                "baseline_lines": baseline.total(),
                "templates": miner.len(),
                "changes": changes,
                "stack_traces": traces,
            });
            writeln!(out, "{document}")?;
        }
        Format::Human => {
            writeln!(
                out,
                "{} lines against {} baseline lines, {} templates",
                current.total(),
                baseline.total(),
                miner.len()
            )?;
            writeln!(out)?;
            if changes.is_empty() {
                writeln!(out, "no new or spiking templates")?;
            } else {
                writeln!(
                    out,
                    "{:<8}  {:>8}  {:>8}  {:>6}  template",
                    "", "count", "baseline", "id"
                )?;
                for change in &changes {
                    let status = if change.new { "new" } else { "spiking" };
                    writeln!(
                        out,
                        "{status:<8}  {:>8}  {:>8}  {:>6}  {}",
                        change.count, change.baseline, change.id.0, change.pattern
                    )?;
                }
            }
            writeln!(out)?;
            if traces.is_empty() {
                writeln!(out, "no stack traces")?;
            } else {
                writeln!(out, "stack traces:")?;
                for trace in &traces {
                    let message = if trace.message.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", trace.message)
                    };
                    writeln!(out, "{:>8}  {}{message}", trace.count, trace.exception)?;
                    for frame in trace.frames.iter().take(3) {
                        writeln!(out, "{:>8}    at {frame}", "")?;
                    }
                }
            }
        }
    }
    out.flush().context("writing standard output")?;
    Ok(ExitCode::SUCCESS)
}

/// Lines buffered for [`stack::extract`] a chunk at a time, cut where no trace can be open,
/// so memory stays bounded; the groups of all chunks are added up.
#[derive(Default)]
struct StackChunks {
    lines: Vec<String>,
    groups: Vec<stack::StackGroup>,
}

impl StackChunks {
    fn push(&mut self, line: &str) {
        self.lines.push(line.to_owned());
        if self.lines.len() >= STACK_CHUNK_LINES {
            let cut = cut_point(&self.lines);
            let rest = self.lines.split_off(cut);
            self.flush();
            self.lines = rest;
        }
    }

    fn flush(&mut self) {
        let lines: Vec<&str> = self.lines.iter().map(String::as_str).collect();
        for group in stack::extract(&lines) {
            match self.groups.iter_mut().find(|known| {
                known.language == group.language
                    && known.exception == group.exception
                    && known.message == group.message
                    && known.frames == group.frames
            }) {
                Some(known) => known.count += group.count,
                None => self.groups.push(group),
            }
        }
        self.lines.clear();
    }

    /// The groups, most frequent first, then in order of first appearance.
    fn finish(mut self) -> Vec<stack::StackGroup> {
        self.flush();
        let mut groups = self.groups;
        groups.sort_by_key(|group| std::cmp::Reverse(group.count));
        groups
    }
}

/// The last place in `lines` between two unindented lines that neither start nor continue a
/// trace (so no trace is cut in two); the whole buffer when there is none.
fn cut_point(lines: &[String]) -> usize {
    const TRACE_WORDS: &[&str] = &[
        "Caused by",
        "Suppressed",
        "...",
        "Traceback",
        "During handling",
        "The above exception",
        "goroutine",
        "panic",
        "fatal error",
        "created by",
        "[signal",
        "Exception",
    ];
    let plain = |line: &str| {
        line.bytes()
            .next()
            .is_some_and(|byte| !byte.is_ascii_whitespace())
            && !TRACE_WORDS.iter().any(|word| line.starts_with(word))
    };
    (1..lines.len())
        .rev()
        .take(STACK_CHUNK_LINES / 2)
        .find(|index| {
            lines.get(index - 1).is_some_and(|line| plain(line))
                && lines.get(*index).is_some_and(|line| plain(line))
        })
        .unwrap_or(lines.len())
}

/// The messages of a file or of standard input: its lines, or one CSV column of its records.
struct Messages {
    reader: Box<dyn BufRead>,
    buffer: Vec<u8>,
    /// The line read lossily, when it is not UTF-8.
    text: String,
    column: Option<usize>,
    fields: Vec<String>,
}

impl Messages {
    fn open(path: &Path, column: Option<&str>) -> anyhow::Result<Messages> {
        let reader: Box<dyn BufRead> = if path == Path::new("-") {
            Box::new(BufReader::with_capacity(1 << 16, io::stdin()))
        } else {
            let file =
                File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
            Box::new(BufReader::with_capacity(1 << 16, file))
        };
        let mut messages = Messages {
            reader,
            buffer: Vec::new(),
            text: String::new(),
            column: None,
            fields: Vec::new(),
        };
        if let Some(name) = column {
            if !messages.next_record()? {
                anyhow::bail!(
                    "{}: no CSV header (looking for column {name})",
                    path.display()
                );
            }
            let index = messages
                .fields
                .iter()
                .position(|field| field.trim() == name)
                .with_context(|| {
                    format!(
                        "{}: no column {name} in the CSV header ({})",
                        path.display(),
                        messages.fields.join(", ")
                    )
                })?;
            messages.column = Some(index);
        }
        Ok(messages)
    }

    /// The next message, `None` at the end of the input.
    fn next_message(&mut self) -> anyhow::Result<Option<&str>> {
        match self.column {
            None => {
                if !self.next_line()? {
                    return Ok(None);
                }
                if let Ok(text) = std::str::from_utf8(&self.buffer) {
                    return Ok(Some(text));
                }
                self.text = String::from_utf8_lossy(&self.buffer).into_owned();
                Ok(Some(&self.text))
            }
            Some(index) => {
                if !self.next_record()? {
                    return Ok(None);
                }
                Ok(Some(self.fields.get(index).map_or("", String::as_str)))
            }
        }
    }

    /// Reads one line into `buffer` (without its line break), at most [`MAX_LINE_BYTES`] of it.
    fn next_line(&mut self) -> anyhow::Result<bool> {
        self.buffer.clear();
        let mut read_any = false;
        loop {
            let available = self.reader.fill_buf().context("reading the input")?;
            if available.is_empty() {
                break;
            }
            read_any = true;
            let (chunk, used, done) = match memchr(available) {
                Some(at) => (available.get(..at).unwrap_or(&[]), at + 1, true),
                None => (available, available.len(), false),
            };
            let room = MAX_LINE_BYTES.saturating_sub(self.buffer.len());
            self.buffer
                .extend_from_slice(chunk.get(..chunk.len().min(room)).unwrap_or(&[]));
            self.reader.consume(used);
            if done {
                break;
            }
        }
        if self.buffer.last() == Some(&b'\r') {
            self.buffer.pop();
        }
        Ok(read_any)
    }

    /// Reads one CSV record (RFC 4180: quoted fields may hold commas, quotes as `""` and line
    /// breaks) into `fields`.
    fn next_record(&mut self) -> anyhow::Result<bool> {
        self.fields.clear();
        if !self.next_line()? {
            return Ok(false);
        }
        let mut record = String::from_utf8_lossy(&self.buffer).into_owned();
        // A quoted field that holds line breaks continues on the next lines.
        while record.bytes().filter(|byte| *byte == b'"').count() % 2 == 1
            && record.len() < MAX_LINE_BYTES
            && self.next_line()?
        {
            record.push('\n');
            record.push_str(&String::from_utf8_lossy(&self.buffer));
        }
        let mut field = String::new();
        let mut quoted = false;
        let mut chars = record.chars().peekable();
        while let Some(char) = chars.next() {
            match (quoted, char) {
                (true, '"') if chars.peek() == Some(&'"') => {
                    field.push('"');
                    chars.next();
                }
                (true, '"') => quoted = false,
                (false, '"') => quoted = true,
                (false, ',') => self.fields.push(std::mem::take(&mut field)),
                (_, char) => field.push(char),
            }
        }
        self.fields.push(field);
        Ok(true)
    }
}

fn memchr(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|byte| *byte == b'\n')
}

/// Template ids in input order, in a temporary file deleted as soon as it is open (on Unix;
/// elsewhere when dropped).
struct Spool {
    file: BufWriter<File>,
    path: PathBuf,
}

impl Spool {
    fn create() -> anyhow::Result<Spool> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_nanos())
            .unwrap_or(0);
        let path =
            std::env::temp_dir().join(format!("medic-logs-{}-{nanos}.ids", std::process::id()));
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        // Gone from the folder at once; the open file lives on until it is closed.
        let _ = std::fs::remove_file(&path);
        Ok(Spool {
            file: BufWriter::with_capacity(1 << 16, file),
            path,
        })
    }

    fn push(&mut self, id: TemplateId) -> anyhow::Result<()> {
        self.file
            .write_all(&id.0.to_le_bytes())
            .context("writing the spooled template ids")
    }

    fn into_reader(self) -> anyhow::Result<BufReader<File>> {
        let path = self.path.clone();
        let mut file = self
            .file
            .into_inner()
            .map_err(|error| error.into_error())
            .context("writing the spooled template ids")?;
        file.rewind().context("reading the spooled template ids")?;
        let _ = std::fs::remove_file(path);
        Ok(BufReader::with_capacity(1 << 16, file))
    }
}

/// Lines and templates so far, on stderr when it is a terminal, for large inputs only.
struct Progress {
    terminal: bool,
    lines: u64,
    shown: bool,
}

impl Progress {
    fn new() -> Progress {
        Progress {
            terminal: io::stderr().is_terminal(),
            lines: 0,
            shown: false,
        }
    }

    fn tick(&mut self, miner: &Miner) {
        self.lines += 1;
        if self.terminal && self.lines.is_multiple_of(PROGRESS_EVERY) {
            eprint!("\r{} lines, {} templates", self.lines, miner.len());
            self.shown = true;
        }
    }

    fn finish(&self) {
        if self.shown {
            eprintln!();
        }
    }
}
