//! Work spread over the machine's cores: the files of a check are parsed, and its PromQL
//! literals checked, by as many threads as there are cores. No I/O; the results come back in
//! the items' order, so nothing downstream depends on how the work was shared.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Stack of each helper thread: parsing recurses (within the parser's depth limits), and the
/// language server gives its threads as much.
const STACK_BYTES: usize = 16 * 1024 * 1024;

/// `work` applied to every item (with its index), by the calling thread and one helper per further core; each
/// thread takes the next unclaimed item, so a few large items do not leave a core idle. A
/// helper that cannot start only means fewer threads. A panic in `work` is resumed in the
/// caller.
pub(crate) fn map<T, R, F>(items: &[T], work: F) -> Vec<R>
where
    T: Sync,
    R: Send,
    F: Fn(usize, &T) -> R + Sync,
{
    map_alongside(items, work, || ()).0
}

/// [`map`], with the calling thread running `meanwhile` first: the helpers start on the
/// items at once, and the caller joins them when `meanwhile` is done. On one core the
/// caller does everything, `meanwhile` first.
pub(crate) fn map_alongside<T, R, F, M>(
    items: &[T],
    work: F,
    meanwhile: impl FnOnce() -> M,
) -> (Vec<R>, M)
where
    T: Sync,
    R: Send,
    F: Fn(usize, &T) -> R + Sync,
{
    let threads = std::thread::available_parallelism()
        .map_or(1, |cores| cores.get())
        .min(items.len());
    if threads <= 1 {
        let other = meanwhile();
        let results = items
            .iter()
            .enumerate()
            .map(|(index, item)| work(index, item))
            .collect();
        return (results, other);
    }
    let next = AtomicUsize::new(0);
    let claim = || {
        let mut done = Vec::new();
        loop {
            let index = next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = items.get(index) else {
                break;
            };
            done.push((index, work(index, item)));
        }
        done
    };
    let mut results: Vec<Option<R>> = std::iter::repeat_with(|| None).take(items.len()).collect();
    let other = std::thread::scope(|scope| {
        let helpers: Vec<_> = (1..threads)
            .filter_map(|_| {
                std::thread::Builder::new()
                    .stack_size(STACK_BYTES)
                    .spawn_scoped(scope, claim)
                    .ok()
            })
            .collect();
        let other = meanwhile();
        let mut finished = vec![claim()];
        for helper in helpers {
            match helper.join() {
                Ok(done) => finished.push(done),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        for (index, result) in finished.into_iter().flatten() {
            if let Some(slot) = results.get_mut(index) {
                *slot = Some(result);
            }
        }
        other
    });
    // Every index was claimed by a thread that finished; the fallback is for form's sake.
    let results = results
        .into_iter()
        .zip(items)
        .enumerate()
        .map(|(index, (result, item))| result.unwrap_or_else(|| work(index, item)))
        .collect();
    (results, other)
}

#[cfg(test)]
mod tests {
    use super::map;

    #[test]
    fn results_come_back_in_the_items_order() {
        let items: Vec<u64> = (0..1_000).collect();
        let squares = map(&items, |_, item| item * item);
        assert_eq!(
            squares,
            items.iter().map(|item| item * item).collect::<Vec<_>>()
        );
        assert!(map(&[] as &[u64], |_, item| *item).is_empty());
        assert_eq!(map(&[7u64], |index, item| item + index as u64 + 1), vec![8]);
    }

    #[test]
    fn the_caller_works_alongside_and_gets_both_results() {
        let items: Vec<u64> = (0..100).collect();
        let (doubled, other) = super::map_alongside(&items, |_, item| item * 2, || "done");
        assert_eq!(
            doubled,
            items.iter().map(|item| item * 2).collect::<Vec<_>>()
        );
        assert_eq!(other, "done");
    }
}
