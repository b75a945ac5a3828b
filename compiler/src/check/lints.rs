//! Whole-program lints: rules that never match, rules shadowed by earlier ones, constant
//! conditions.

use super::*;

impl<'a> Checker<'a> {
    pub(super) fn rule_lints(&mut self, program: &typed::Program) {
        // Rules that can never match.
        for rule in &program.rules {
            self.file = rule.file;
            if let Some(reason) = self.contradiction(rule) {
                self.report(Lint::NeverMatches {
                    span: rule.when.as_ref().map_or(rule.name_span, |when| when.span),
                    rule: rule.name.clone(),
                    reason,
                    help: Some("fix the condition or remove the rule".into()),
                });
            }
        }
        // Shadowed rules: an earlier rule (in matching order) without `continue` that matches
        // every alert the later one matches.
        let mut order: Vec<usize> = (0..program.rules.len()).collect();
        order.sort_by_key(|&index| {
            let rule = program.rules.get(index);
            (
                std::cmp::Reverse(rule.map_or(0, |rule| rule.priority)),
                index,
            )
        });
        let conjunct_texts: Vec<BTreeSet<String>> = program
            .rules
            .iter()
            .map(|rule| {
                let text = self
                    .files
                    .get(rule.file.0 as usize)
                    .map_or("", |file| file.text.as_str());
                rule.when
                    .as_ref()
                    .map(|when| {
                        conjuncts(when)
                            .into_iter()
                            .map(|expr| crate::format::expr_text(expr, text))
                            .collect()
                    })
                    .unwrap_or_default()
            })
            .collect();
        // Earlier rules (without `continue`) by their exact set of conditions, so that the
        // rules that could shadow a rule are found by looking up the subsets of its own
        // conditions: linear in the number of rules, not quadratic.
        type Conditions = Vec<String>;
        let mut wildcard: HashMap<Conditions, Vec<usize>> = HashMap::new();
        let mut named: HashMap<&str, HashMap<Conditions, Vec<usize>>> = HashMap::new();
        let mut position = vec![0usize; program.rules.len()];
        for (rank, &index) in order.iter().enumerate() {
            if let Some(slot) = position.get_mut(index) {
                *slot = rank;
            }
        }
        for &index in &order {
            let Some(rule) = program.rules.get(index) else {
                continue;
            };
            let Some(conditions) = conjunct_texts.get(index) else {
                continue;
            };
            let conditions: Vec<&String> = conditions.iter().collect();
            let mut shadow: Option<usize> = None;
            for key in subsets(&conditions) {
                let lists = std::iter::once(wildcard.get(&key)).chain(
                    rule.alert_names
                        .iter()
                        .map(|name| named.get(name.as_str()).and_then(|sets| sets.get(&key))),
                );
                for list in lists.flatten() {
                    let covering = list.iter().copied().find(|&earlier_index| {
                        program.rules.get(earlier_index).is_some_and(|earlier| {
                            let covers_lifecycle = earlier.lifecycle == rule.lifecycle
                                || earlier.lifecycle == ast::Lifecycle::Any;
                            let covers_names = earlier.alert_names.is_empty()
                                || (!rule.alert_names.is_empty()
                                    && rule
                                        .alert_names
                                        .iter()
                                        .all(|name| earlier.alert_names.contains(name)));
                            covers_lifecycle && covers_names
                        })
                    });
                    if let Some(found) = covering {
                        let rank = |candidate: usize| {
                            position.get(candidate).copied().unwrap_or(usize::MAX)
                        };
                        if shadow.is_none_or(|current| rank(found) < rank(current)) {
                            shadow = Some(found);
                        }
                    }
                }
            }
            if let Some(earlier) = shadow.and_then(|earlier_index| program.rules.get(earlier_index))
            {
                self.file = rule.file;
                let same_file = earlier.file == rule.file;
                self.report(Lint::ShadowedRule {
                    span: rule.name_span,
                    by_span: if same_file {
                        earlier.name_span
                    } else {
                        rule.name_span
                    },
                    rule: rule.name.clone(),
                    by: earlier.name.clone(),
                });
            }
            if !rule.continue_matching {
                let key: Conditions = conditions
                    .iter()
                    .map(|condition| (*condition).clone())
                    .collect();
                if rule.alert_names.is_empty() {
                    wildcard.entry(key).or_default().push(index);
                } else {
                    for name in &rule.alert_names {
                        named
                            .entry(name.as_str())
                            .or_default()
                            .entry(key.clone())
                            .or_default()
                            .push(index);
                    }
                }
            }
        }
    }

    /// Why a rule's conditions contradict each other, if they do.
    pub(super) fn contradiction(&self, rule: &typed::Rule) -> Option<String> {
        // Allowed values per alert field; absent means unconstrained.
        let mut allowed: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut excluded: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        if !rule.alert_names.is_empty() {
            allowed.insert("name".into(), rule.alert_names.iter().cloned().collect());
        }
        match rule.lifecycle {
            ast::Lifecycle::Firing => {
                allowed.insert("status".into(), BTreeSet::from(["firing".to_string()]));
            }
            ast::Lifecycle::Resolved => {
                allowed.insert("status".into(), BTreeSet::from(["resolved".to_string()]));
            }
            ast::Lifecycle::Any => {}
        }
        let conditions = rule.when.as_ref().map(conjuncts).unwrap_or_default();
        for condition in conditions {
            let Some((field, set, negated)) = self.constraint(condition) else {
                continue;
            };
            if negated {
                excluded.entry(field.clone()).or_default().extend(set);
            } else {
                let entry = allowed.entry(field.clone());
                match entry {
                    std::collections::btree_map::Entry::Vacant(vacant) => {
                        vacant.insert(set);
                    }
                    std::collections::btree_map::Entry::Occupied(mut occupied) => {
                        let intersection: BTreeSet<String> =
                            occupied.get().intersection(&set).cloned().collect();
                        occupied.insert(intersection);
                    }
                }
            }
            let remaining = allowed.get(&field).map(|values| {
                values
                    .iter()
                    .filter(|value| !excluded.get(&field).is_some_and(|ex| ex.contains(*value)))
                    .count()
            });
            if remaining == Some(0) {
                return Some(format!(
                    "no alert satisfies every condition on `alert.{field}`"
                ));
            }
        }
        None
    }

    /// Reads `alert.f == "x"`, `alert.f in [...]`, `alert.severity >= critical` and their
    /// negations as a set of allowed (or, when negated, excluded) values of one field.
    pub(super) fn constraint(
        &self,
        expr: &typed::Expr,
    ) -> Option<(String, BTreeSet<String>, bool)> {
        let ExprKind::Binary(op, _, left, right) = &expr.unparen().kind else {
            return None;
        };
        let field_of = |expr: &typed::Expr| -> Option<String> {
            match &expr.unparen().kind {
                ExprKind::Field(base, field)
                    if base.as_name().is_some_and(|name| name.name == "alert") =>
                {
                    Some(field.name.clone())
                }
                _ => None,
            }
        };
        let literal = |expr: &typed::Expr| -> Option<String> {
            match &expr.unparen().kind {
                ExprKind::Str(parts, _) => {
                    let mut text = String::new();
                    for part in parts {
                        match part {
                            ast::StrPart::Text(value, _) => text.push_str(value),
                            ast::StrPart::Interpolation(_) => return None,
                        }
                    }
                    Some(text)
                }
                ExprKind::Variant(ident) => Some(ident.name.clone()),
                _ => None,
            }
        };
        let field = field_of(left)?;
        match op {
            BinaryOp::Eq | BinaryOp::Ne => {
                let value = literal(right)?;
                Some((field, BTreeSet::from([value]), *op == BinaryOp::Ne))
            }
            BinaryOp::In | BinaryOp::NotIn => {
                let ExprKind::List(elements) = &right.unparen().kind else {
                    return None;
                };
                let values: Option<BTreeSet<String>> = elements.iter().map(literal).collect();
                Some((field, values?, *op == BinaryOp::NotIn))
            }
            BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => {
                let Type::Enum(id) = right.ty else {
                    return None;
                };
                let variant = literal(right)?;
                let variants = &self.env.enum_def(id)?.variants;
                let position = variants
                    .iter()
                    .position(|candidate| *candidate == variant)?;
                let set = variants
                    .iter()
                    .enumerate()
                    .filter(|(index, _)| match op {
                        BinaryOp::Lt => *index < position,
                        BinaryOp::Le => *index <= position,
                        BinaryOp::Gt => *index > position,
                        _ => *index >= position,
                    })
                    .map(|(_, name)| name.clone())
                    .collect();
                Some((field, set, false))
            }
            _ => None,
        }
    }

    pub(super) fn constant_condition(&mut self, expr: &typed::Expr) {
        if let ExprKind::Bool(value) = expr.unparen().kind {
            self.report(Lint::ConstantCondition {
                span: expr.span,
                value,
            });
        }
    }

    // ------------------------------------------------------------ constants in clauses
}
