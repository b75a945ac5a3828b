//! A playbook's DAG as SVG, laid out by the server: each task in the column of its longest
//! chain of dependencies, in plan order within a column, with edges from each dependency
//! and the task's state as its colour. Pure: tasks and states in, SVG text out (escaped by
//! maud), tested on data.

use maud::{Markup, html};
use medic_compiler::plan::Playbook;
use std::collections::BTreeMap;

const COLUMN: i64 = 190;
const ROW: i64 = 56;
const BOX_WIDTH: i64 = 160;
const BOX_HEIGHT: i64 = 38;
const MARGIN: i64 = 12;

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
pub fn svg(playbook: &Playbook, states: &BTreeMap<String, String>) -> Markup {
    let placed = layout(playbook);
    let columns = placed
        .values()
        .map(|(column, _)| column + 1)
        .max()
        .unwrap_or(1);
    let rows = placed.values().map(|(_, row)| row + 1).max().unwrap_or(1);
    let width = columns * COLUMN + 2 * MARGIN;
    let height = rows * ROW + 2 * MARGIN;
    let position = |id: &str| {
        placed
            .get(id)
            .map(|(column, row)| (MARGIN + column * COLUMN, MARGIN + row * ROW))
    };
    html! {
        svg xmlns="http://www.w3.org/2000/svg" class="dag" width=(width) height=(height)
            viewBox={ "0 0 " (width) " " (height) } role="img" aria-label={ "tasks of " (playbook.name) } {
            @for task in &playbook.tasks {
                @for dependency in &task.depends_on {
                    @if let (Some((from_x, from_y)), Some((to_x, to_y))) = (position(dependency), position(&task.id)) {
                        line class="edge" x1=(from_x + BOX_WIDTH) y1=(from_y + BOX_HEIGHT / 2)
                            x2=(to_x) y2=(to_y + BOX_HEIGHT / 2) {}
                    }
                }
            }
            @for task in &playbook.tasks {
                @if let Some((x, y)) = position(&task.id) {
                    @let state = states.get(&task.id).map_or("pending", String::as_str);
                    g class={ "task " (state_class(state)) } {
                        title { (task.id) " (" (task.function) "): " (state) }
                        rect x=(x) y=(y) width=(BOX_WIDTH) height=(BOX_HEIGHT) rx="6" {}
                        text x=(x + 8) y=(y + 16) { (truncate(&task.id, 22)) }
                        text class="detail" x=(x + 8) y=(y + 31) { (truncate(&format!("{} · {state}", task.function), 26)) }
                    }
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
