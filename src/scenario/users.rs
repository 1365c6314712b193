//! User types and their tasks: weights, fixed counts, think time, nested and sequential task
//! sets, tag filtering.

use super::*;

impl Compiler<'_> {
    /// The file's user types, those with a task left after tag filtering.
    pub(super) fn user_types(
        &mut self,
        users: &[Spanned<UserDef>],
        file_host: Option<&Host>,
    ) -> Compiled<Vec<UserType>> {
        if users.is_empty() {
            return Err(self.error(0, "no [[user]] in the file; expected at least one user type"));
        }
        let mut user_types = Vec::new();
        for (index, user) in users.iter().enumerate() {
            // Unnamed types are named by their place, as a person would refer to them.
            let name = match users.len() {
                1 => "User".to_string(),
                _ => format!("User{}", index + 1),
            };
            if let Some(user_type) = self.user_type(user, file_host, name)? {
                user_types.push(user_type);
            }
        }
        if user_types.is_empty() {
            return Err(self.error(0, "no user type has a task left after --tags/--exclude-tags"));
        }
        if user_types.iter().all(|u| u.fixed_count.is_some()) {
            // Every user must belong to a type: the last type takes users beyond the counts.
            let last = user_types.last_mut().expect("not empty");
            last.fixed_count = None;
        }
        Ok(user_types)
    }

    fn user_type(
        &mut self,
        user: &Spanned<UserDef>,
        file_host: Option<&Host>,
        unnamed: String,
    ) -> Compiled<Option<UserType>> {
        let def = user.get_ref();
        let name = def.name.as_ref().map_or(unnamed, |n| n.get_ref().clone());
        let host = match &def.host {
            Some(host) => Some(self.host(host.get_ref(), Some(host.span().start))?),
            None => file_host.cloned(),
        };
        let weight = match &def.weight {
            Some(w) => self.weight(w)?,
            None => 1,
        };
        let wait = match &def.wait_time {
            Some(wait) => self.wait(wait)?,
            None => Wait::None,
        };
        let mut tasks = Vec::new();
        for task in &def.tasks {
            if let Some(task) = self.task(task, host.as_ref(), &name, false)? {
                tasks.push(task);
            }
        }
        if def.tasks.is_empty() {
            return Err(self.error(user.span().start, format!("user type \"{name}\" has no [[user.task]]")));
        }
        if tasks.is_empty() {
            return Ok(None);
        }
        let mut headers = Vec::new();
        for (header, value) in &def.headers {
            let template = self.template(value, Escape::Raw)?;
            if template.parts.iter().any(|p| matches!(p, Part::Expr(crate::config::Expr::Pool(_), _))) {
                return Err(self.error(value.span().start, "default headers cannot read a pool"));
            }
            headers.push((header.clone(), template));
        }
        Ok(Some(UserType {
            name: name.clone(),
            weight,
            fixed_count: def.fixed_count.as_ref().map(|c| *c.get_ref()),
            tasks,
            wait,
            headers,
            on_start: self.steps(&def.on_start, host.as_ref(), &format!("{name} / on_start"))?,
            on_stop: self.steps(&def.on_stop, host.as_ref(), &format!("{name} / on_stop"))?,
            on_start_retries: match &def.on_start_retries {
                Some(retries) if (0..=100).contains(retries.get_ref()) => *retries.get_ref() as u32,
                Some(retries) => {
                    let message = format!("on_start_retries {}: expected 0 to 100", retries.get_ref());
                    return Err(self.error(retries.span().start, message));
                }
                None => 0,
            },
        }))
    }

    fn weight(&self, weight: &Spanned<i64>) -> Compiled<u32> {
        match *weight.get_ref() {
            w if w >= 1 && w <= i64::from(u32::MAX / 1024) => Ok(w as u32),
            w => Err(self.error(weight.span().start, format!("weight {w}: expected a whole number of at least 1"))),
        }
    }

    fn count(&self, value: &Spanned<i64>, what: &str) -> Compiled<u32> {
        match *value.get_ref() {
            n if n >= 1 && n <= i64::from(u32::MAX) => Ok(n as u32),
            n => Err(self.error(value.span().start, format!("{what} {n}: expected a whole number of at least 1"))),
        }
    }

    fn wait(&self, wait: &Spanned<WaitDef>) -> Compiled<Wait> {
        let at = wait.span().start;
        let duration = |text: &DurationDef| text.parse().map_err(|e| self.error(at, format!("wait_time: {e}")));
        // A rate's mean gap, 1/rate, must be a duration (at most 100 years).
        let gap = |rate: f64| {
            let gap = (rate.is_finite() && rate > 0.0).then(|| crate::units::duration_from_secs(1.0 / rate));
            gap.flatten().ok_or_else(|| {
                self.error(
                    at,
                    format!("wait_time rate {rate:?}: expected tasks per second above 0 (at least one per 100 years)"),
                )
            })
        };
        Ok(match wait.get_ref() {
            WaitDef::Constant(d) => Wait::Constant(duration(d)?),
            WaitDef::Between([low, high]) => {
                let (low, high) = (duration(low)?, duration(high)?);
                if low > high {
                    return Err(self.error(at, "wait_time between: the first bound is above the second"));
                }
                Wait::Between(low, high)
            }
            WaitDef::ConstantPacing(d) => Wait::Pacing(duration(d)?),
            WaitDef::ConstantThroughput(rate) => Wait::Pacing(gap(*rate)?),
            WaitDef::Poisson(rate) => {
                gap(*rate)?;
                Wait::Poisson(*rate)
            }
        })
    }

    /// A task, or `None` when tag filtering leaves it out. A set selected by its tags brings
    /// all its tasks (as Locust's tags on a TaskSet do); `selected` says the parent was.
    fn task(
        &mut self,
        task: &Spanned<TaskDef>,
        host: Option<&Host>,
        parent: &str,
        selected: bool,
    ) -> Compiled<Option<Task>> {
        let def = task.get_ref();
        let at = task.span().start;
        let tags = &self.overrides.tags;
        let selected = selected || tags.is_empty() || def.tags.iter().any(|t| tags.contains(t));
        let excluded = def.tags.iter().any(|t| self.overrides.exclude_tags.contains(t));
        let name = def.name.clone().unwrap_or_else(|| default_task_name(def));
        let path = format!("{parent} / {name}");
        let shapes = [def.request.is_some(), def.steps.is_some(), def.tasks.is_some()];
        if shapes.iter().filter(|s| **s).count() != 1 {
            return Err(self.error(
                at,
                format!("task \"{name}\": expected exactly one of `request`, `steps` or `tasks` (a nested task set)"),
            ));
        }
        let weight = match &def.weight {
            Some(w) => self.weight(w)?,
            None => 1,
        };
        let repeat = match &def.repeat {
            Some(r) => self.count(r, "repeat")?,
            None => 1,
        };
        let kind = if let Some(request) = &def.request {
            TaskKind::Steps(self.steps(std::slice::from_ref(request), host, &path)?)
        } else if let Some(steps) = &def.steps {
            if steps.is_empty() {
                return Err(self.error(at, format!("task \"{name}\": `steps` is empty")));
            }
            TaskKind::Steps(self.steps(steps, host, &path)?)
        } else {
            match self.task_set(task, &name, host, &path, selected)? {
                Some(set) => set,
                None => return Ok(None),
            }
        };
        // A set not selected itself stays when some of its tasks were.
        let keep = !excluded && (selected || matches!(kind, TaskKind::Set { .. }));
        Ok(keep.then(|| Task { name, weight, repeat, tags: def.tags.clone(), kind }))
    }

    /// A nested task set (`tasks`), or `None` when tag filtering leaves none of its tasks.
    fn task_set(
        &mut self,
        task: &Spanned<TaskDef>,
        name: &str,
        host: Option<&Host>,
        path: &str,
        selected: bool,
    ) -> Compiled<Option<TaskKind>> {
        let def = task.get_ref();
        let at = task.span().start;
        let subtasks = def.tasks.as_ref().expect("a task set");
        let mut tasks = Vec::new();
        for sub in subtasks {
            // Tags filter nested tasks too; an untagged set keeps the tagged ones it has.
            if let Some(sub) = self.task(sub, host, path, selected)? {
                tasks.push(sub);
            }
        }
        if subtasks.is_empty() {
            return Err(self.error(at, format!("task set \"{name}\" has no tasks")));
        }
        if tasks.is_empty() {
            return Ok(None);
        }
        let sequential = def.sequential.unwrap_or(false);
        let total: u32 = tasks.iter().map(|t| t.weight).sum();
        let interrupt_weight = match (&def.interrupt_weight, &def.interrupt_probability) {
            (Some(_), Some(p)) => {
                return Err(self.error(p.span().start, "give interrupt_weight or interrupt_probability, not both"))
            }
            (Some(w), None) => self.weight(w)?,
            (None, Some(p)) => {
                let probability = *p.get_ref();
                if !(probability > 0.0 && probability < 1.0) {
                    let message = format!("interrupt_probability {probability}: expected between 0 and 1");
                    return Err(self.error(p.span().start, message));
                }
                // weight / (total + weight) = p
                ((probability * f64::from(total)) / (1.0 - probability)).round().max(1.0) as u32
            }
            (None, None) if sequential => 0,
            (None, None) => {
                return Err(self.error(
                    at,
                    format!(
                        "task set \"{name}\" never returns to its parent: give interrupt_weight or \
                         interrupt_probability (or sequential = true)"
                    ),
                ))
            }
        };
        let loops = match &def.loops {
            Some(l) => self.count(l, "loops")?,
            None => 1,
        };
        Ok(Some(TaskKind::Set { tasks, sequential, interrupt_weight, loops }))
    }
}

/// The steps directly in a task (and in nested sets), for collecting names up front.
pub(super) fn task_steps(task: &TaskDef) -> Vec<&Spanned<StepDef>> {
    let mut steps: Vec<&Spanned<StepDef>> = Vec::new();
    steps.extend(task.request.iter());
    steps.extend(task.steps.iter().flatten());
    for sub in task.tasks.iter().flatten() {
        steps.extend(task_steps(sub.get_ref()));
    }
    steps
}

fn default_task_name(task: &TaskDef) -> String {
    let step = task.request.as_ref().or_else(|| task.steps.as_ref().and_then(|s| s.first()));
    match step.map(|s| s.get_ref()) {
        Some(step) => step
            .methods()
            .next()
            .map(|(m, u)| format!("{m} {}", step.name.as_deref().unwrap_or(u.get_ref())))
            .unwrap_or_else(|| "task".into()),
        None if task.tasks.is_some() => "task set".into(),
        None => "task".into(),
    }
}
