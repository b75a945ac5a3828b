//! A playbook's DAG as SVG, laid out by the server: each task in the column of its longest
//! chain of dependencies, in plan order within a column, with edges from each dependency
//! and the task's state as its colour. A wide fan-out stays usable: a column of more than
//! [`FAN_LIMIT`] tasks shows the ones that need looking at first (failed, waiting, running)
//! and one box that counts the rest by state; the page can ask for every task. Pure: tasks
//! and states in, SVG text out (escaped by maud), tested on data.

use maud::{Markup, html};
use medic_compiler::plan::Playbook;
use std::collections::BTreeMap;

const COLUMN: i64 = 190;
const ROW: i64 = 56;
const BOX_WIDTH: i64 = 160;
const BOX_HEIGHT: i64 = 38;
const MARGIN: i64 = 12;
/// Tasks a column shows before the rest are folded into one box.
pub const FAN_LIMIT: usize = 8;

/// Where tasks go once wide columns are folded.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Folded {
    /// (column, row) of each task drawn in its own box.
    pub placed: BTreeMap<String, (i64, i64)>,
    /// Per column that was folded: the row of its summary box and the tasks in it.
    pub hidden: BTreeMap<i64, (i64, Vec<String>)>,
}

/// How much a task's state asks for a look: lower first.
fn urgency(state: &str) -> u8 {
    match state_class(state) {
        "failed" => 0,
        "waiting" => 1,
        "running" => 2,
        _ => 3,
    }
}

/// [`layout`], with every column of more than `limit` tasks cut to its `limit - 1` most
/// urgent tasks (by state, then plan order) and a summary box for the others.
pub fn fold(playbook: &Playbook, states: &BTreeMap<String, String>, limit: usize) -> Folded {
    let placed = layout(playbook);
    let mut columns: BTreeMap<i64, Vec<&str>> = BTreeMap::new();
    for task in &playbook.tasks {
        if let Some((column, _)) = placed.get(&task.id) {
            columns.entry(*column).or_default().push(&task.id);
        }
    }
    let mut folded = Folded::default();
    for (column, tasks) in columns {
        if tasks.len() <= limit.max(2) {
            for (row, id) in tasks.iter().enumerate() {
                folded
                    .placed
                    .insert((*id).to_string(), (column, row as i64));
            }
            continue;
        }
        let mut ranked: Vec<(u8, usize, &str)> = tasks
            .iter()
            .enumerate()
            .map(|(order, id)| {
                let state = states.get(*id).map_or("pending", String::as_str);
                (urgency(state), order, *id)
            })
            .collect();
        ranked.sort_unstable();
        let shown = limit.max(2) - 1;
        let mut kept: Vec<(usize, &str)> = ranked
            .iter()
            .take(shown)
            .map(|(_, order, id)| (*order, *id))
            .collect();
        kept.sort_unstable();
        for (row, (_, id)) in kept.iter().enumerate() {
            folded
                .placed
                .insert((*id).to_string(), (column, row as i64));
        }
        let rest: Vec<String> = ranked
            .iter()
            .skip(shown)
            .map(|(_, order, id)| (*order, (*id).to_string()))
            .collect::<BTreeMap<_, _>>()
            .into_values()
            .collect();
        folded.hidden.insert(column, (shown as i64, rest));
    }
    folded
}

/// Where each task goes: (column, row), by task id.
pub fn layout(playbook: &Playbook) -> BTreeMap<String, (i64, i64)> {
    let mut column: BTreeMap<&str, i64> = BTreeMap::new();
    // Tasks are in topological order in the plan: a task's dependencies come first.
    for task in &playbook.tasks {
        let depth = task
            .depends_on
            .iter()
            .filter_map(|dependency| column.get(dependency.as_str()))
            .map(|depth| depth + 1)
            .max()
            .unwrap_or(0);
        column.insert(&task.id, depth);
    }
    let mut rows: BTreeMap<i64, i64> = BTreeMap::new();
    let mut placed = BTreeMap::new();
    for task in &playbook.tasks {
        let depth = column.get(task.id.as_str()).copied().unwrap_or(0);
        let row = rows.entry(depth).or_insert(0);
        placed.insert(task.id.clone(), (depth, *row));
        *row += 1;
    }
    placed
}

/// The colour class of a task state (`succeeded`, `failed`, `awaiting_approval`, ...);
/// states the page does not know are drawn as pending.
pub fn state_class(state: &str) -> &'static str {
    match state {
        "succeeded" | "would_run" => "ok",
        "failed" => "failed",
        "skipped" | "not_run" | "cancelled" => "skipped",
        "running" | "started" | "retrying" => "running",
        "awaiting_approval" => "waiting",
        _ => "pending",
    }
}

/// The SVG of `playbook` with `states` (task id → state); tasks without a state are pending.
/// With `all`, every task has its box; otherwise wide columns are folded ([`fold`]).
pub fn svg(playbook: &Playbook, states: &BTreeMap<String, String>, all: bool) -> Markup {
    let folded = fold(playbook, states, if all { usize::MAX } else { FAN_LIMIT });
    let columns = folded
        .placed
        .values()
        .map(|(column, _)| column + 1)
        .max()
        .unwrap_or(1);
    let rows = folded
        .placed
        .values()
        .map(|(_, row)| row + 1)
        .chain(folded.hidden.values().map(|(row, _)| row + 1))
        .max()
        .unwrap_or(1);
    let width = columns * COLUMN + 2 * MARGIN;
    let height = rows * ROW + 2 * MARGIN;
    let corner = |(column, row): (i64, i64)| (MARGIN + column * COLUMN, MARGIN + row * ROW);
    // A folded task's edges go to its column's summary box.
    let mut box_of: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    for (id, at) in &folded.placed {
        box_of.insert(id, corner(*at));
    }
    for (column, (row, ids)) in &folded.hidden {
        for id in ids {
            box_of.insert(id, corner((*column, *row)));
        }
    }
    let mut edges = std::collections::BTreeSet::new();
    for task in &playbook.tasks {
        for dependency in &task.depends_on {
            if let (Some(from), Some(to)) = (
                box_of.get(dependency.as_str()),
                box_of.get(task.id.as_str()),
            ) {
                edges.insert((*from, *to));
            }
        }
    }
    let summaries: Vec<((i64, i64), usize, String)> = folded
        .hidden
        .iter()
        .map(|(column, (row, ids))| {
            let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
            for id in ids {
                *counts
                    .entry(states.get(id).map_or("pending", String::as_str))
                    .or_default() += 1;
            }
            let text = counts
                .iter()
                .map(|(state, count)| format!("{count} {state}"))
                .collect::<Vec<_>>()
                .join(", ");
            (corner((*column, *row)), ids.len(), text)
        })
        .collect();
    html! {
        svg xmlns="http://www.w3.org/2000/svg" class="dag" width=(width) height=(height)
            viewBox={ "0 0 " (width) " " (height) } role="img" aria-label={ "tasks of " (playbook.name) } {
            @for ((from_x, from_y), (to_x, to_y)) in &edges {
                line class="edge" x1=(from_x + BOX_WIDTH) y1=(from_y + BOX_HEIGHT / 2)
                    x2=(to_x) y2=(to_y + BOX_HEIGHT / 2) {}
            }
            @for task in &playbook.tasks {
                @if let Some((x, y)) = folded.placed.get(&task.id).map(|at| corner(*at)) {
                    @let state = states.get(&task.id).map_or("pending", String::as_str);
                    g class={ "task " (state_class(state)) } {
                        title { (task.id) " (" (task.function) "): " (state) }
                        rect x=(x) y=(y) width=(BOX_WIDTH) height=(BOX_HEIGHT) rx="6" {}
                        text x=(x + 8) y=(y + 16) { (truncate(&task.id, 22)) }
                        text class="detail" x=(x + 8) y=(y + 31) { (truncate(&format!("{} · {state}", task.function), 26)) }
                    }
                }
            }
            @for ((x, y), count, text) in &summaries {
                g class="task folded" {
                    title { (count) " more tasks: " (text) }
                    rect x=(x) y=(y) width=(BOX_WIDTH) height=(BOX_HEIGHT) rx="6" stroke-dasharray="4 3" {}
                    text x=(x + 8) y=(y + 16) { "+" (count) " more" }
                    text class="detail" x=(x + 8) y=(y + 31) { (truncate(text, 26)) }
                }
            }
        }
    }
}

fn truncate(text: &str, characters: usize) -> String {
    if text.chars().count() <= characters {
        text.to_string()
    } else {
        let mut kept: String = text.chars().take(characters.saturating_sub(1)).collect();
        kept.push('…');
        kept
    }
}
