//! Locust's `--show-task-ratio` (`--list`): each user type's share of the users and each
//! task's share of its parent's picks, nested task sets included.

use crate::config::Plan;

/// Locust's `--show-task-ratio`: each user type's share of the users and each task's share of
/// its parent's picks (nested task sets included; "interrupt" is the share that returns).
pub fn task_ratios(plan: &Plan) -> String {
    use crate::config::{Task, TaskKind};
    use std::fmt::Write;
    fn tasks(out: &mut String, list: &[Task], extra_weight: Option<u32>, depth: usize) {
        let total = f64::from(list.iter().map(|t| t.weight).sum::<u32>() + extra_weight.unwrap_or(0));
        for (position, task) in list.iter().enumerate() {
            let indent = "   ".repeat(depth);
            // In a sequential set (no extra weight) tasks run in order, `repeat` times each.
            let share = match extra_weight {
                Some(_) => format!("{:.1}%, weight {}", 100.0 * f64::from(task.weight) / total, task.weight),
                None => format!("#{} in order, ×{}", position + 1, task.repeat),
            };
            let kind = match &task.kind {
                TaskKind::Steps(steps) if steps.len() > 1 => format!(", {} steps", steps.len()),
                TaskKind::Steps(_) => String::new(),
                TaskKind::Set { sequential: true, .. } => ", sequential task set".into(),
                TaskKind::Set { .. } => ", task set".into(),
            };
            let tags = if task.tags.is_empty() { String::new() } else { format!(", tags {}", task.tags.join(",")) };
            let _ = writeln!(out, "{indent} - {} ({share}{kind}{tags})", task.name);
            if let TaskKind::Set { tasks: subtasks, interrupt_weight, sequential, loops } = &task.kind {
                let extra = (!sequential).then_some(*interrupt_weight);
                tasks(out, subtasks, extra, depth + 1);
                if *sequential && *loops > 1 {
                    let _ = writeln!(out, "{indent}    (the sequence runs {loops} times, then returns)");
                }
                if !sequential {
                    let sub_total = f64::from(subtasks.iter().map(|t| t.weight).sum::<u32>() + interrupt_weight);
                    let share = 100.0 * f64::from(*interrupt_weight) / sub_total;
                    let _ = writeln!(out, "{}    - interrupt ({share:.1}%, weight {interrupt_weight})", indent);
                }
            }
        }
    }
    let mut out = String::from("Task ratio per user type:\n");
    let weighted: u32 = plan.user_types.iter().filter(|u| u.fixed_count.is_none()).map(|u| u.weight).sum();
    // With fixed-count types, the weights share the users those leave.
    let whom = match plan.user_types.iter().any(|u| u.fixed_count.is_some()) {
        true => "of the users beyond the fixed counts",
        false => "of the users",
    };
    for user_type in &plan.user_types {
        let share = match user_type.fixed_count {
            Some(count) => format!("{count} fixed"),
            None => {
                format!("{:.1}% {whom}", 100.0 * f64::from(user_type.weight) / f64::from(weighted.max(1)))
            }
        };
        let _ = writeln!(out, " - {} ({share}, weight {})", user_type.name, user_type.weight);
        tasks(&mut out, &user_type.tasks, Some(0), 1);
    }
    out
}
