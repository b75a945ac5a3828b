//! Operators and expectations: binary operators, orderings, units, optionals, and the
//! checks of an expression against the type its place expects.

use super::*;

impl<'a> Checker<'a> {
    pub(super) fn binary(
        &mut self,
        expr: &ast::Expr,
        op: BinaryOp,
        op_span: Span,
        left: &ast::Expr,
        right: &ast::Expr,
        scope: &Scope,
    ) -> typed::Expr {
        // A bare enum variant on the left resolves against the right side's type.
        let left_is_bare = left
            .as_name()
            .is_some_and(|name| !scope.bindings.contains_key(&name.name));
        let (typed_left, typed_right) = if left_is_bare
            && right
                .as_name()
                .is_none_or(|name| scope.bindings.contains_key(&name.name))
        {
            let typed_right = self.expr(right, scope, None);
            let hint = typed_right.ty.clone();
            let typed_left = self.expr(left, scope, Some(&hint));
            (typed_left, typed_right)
        } else {
            let left_hint = match op {
                BinaryOp::And | BinaryOp::Or => Some(Type::Bool),
                _ => None,
            };
            let typed_left = self.expr(left, scope, left_hint.as_ref());
            let right_hint = match op {
                BinaryOp::And | BinaryOp::Or => Some(Type::Bool),
                // Only enums need the hint, to resolve bare variants in the list.
                BinaryOp::In | BinaryOp::NotIn => match typed_left.ty.unwrap_optional() {
                    element @ Type::Enum(_) => Some(Type::List(Box::new(element.clone()))),
                    _ => None,
                },
                BinaryOp::Coalesce => Some(typed_left.ty.unwrap_optional().clone()),
                _ => Some(typed_left.ty.unwrap_optional().clone()),
            };
            let typed_right = self.expr(right, scope, right_hint.as_ref());
            (typed_left, typed_right)
        };
        let span = expr.span;
        let ty = match op {
            BinaryOp::And | BinaryOp::Or => {
                self.expect_value(&typed_left, &Type::Bool);
                self.expect_value(&typed_right, &Type::Bool);
                Type::Bool
            }
            BinaryOp::Eq | BinaryOp::Ne => {
                let left_type = typed_left.ty.unwrap_optional().clone();
                let right_type = typed_right.ty.unwrap_optional().clone();
                let compatible =
                    compatible(&right_type, &left_type) || compatible(&left_type, &right_type);
                if compatible {
                    self.quantity_pair(&left_type, &right_type, span);
                } else {
                    self.operand_mismatch(
                        "compare",
                        op,
                        &left_type,
                        &right_type,
                        span,
                        &typed_right,
                    );
                }
                Type::Bool
            }
            BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => {
                let left_type = self.value_type(&typed_left);
                let right_type = self.value_type(&typed_right);
                self.ordering(op, &left_type, &right_type, span, &typed_right);
                Type::Bool
            }
            BinaryOp::In | BinaryOp::NotIn => {
                let left_type = self.value_type(&typed_left);
                let right_type = self.value_type(&typed_right);
                match &right_type {
                    Type::List(element) => {
                        self.quantity_pair(&left_type, element, span);
                        if !compatible(&left_type, element) && !compatible(element, &left_type) {
                            self.report(TypeError::Mismatch {
                                span: typed_left.span,
                                expected: self.env.describe(element),
                                found: self.env.describe(&left_type),
                                help: Some(
                                    "`in` tests membership in a list of the same type".into(),
                                ),
                            });
                        }
                    }
                    Type::Map(_) => self.expect(&typed_left, &Type::String),
                    Type::Error => {}
                    other => {
                        self.report(TypeError::Mismatch {
                            span: typed_right.span,
                            expected: "a list or a map".into(),
                            found: self.env.describe(other),
                            help: None,
                        });
                    }
                }
                Type::Bool
            }
            BinaryOp::Match | BinaryOp::NotMatch => {
                self.expect_value(&typed_left, &Type::String);
                self.expect_value(&typed_right, &Type::String);
                if let Some(pattern) = plain_text(&typed_right)
                    // The evaluator compiles with the same crate and size limits.
                    && let Err(error) = regex::Regex::new(&pattern)
                {
                    let reason = match &error {
                        regex::Error::Syntax(text) => text
                            .lines()
                            .rev()
                            .find(|line| line.starts_with("error:"))
                            .map_or_else(
                                || text.clone(),
                                |line| line.trim_start_matches("error: ").to_string(),
                            ),
                        other => other.to_string(),
                    };
                    self.report(TypeError::InvalidRegex {
                        span: typed_right.span,
                        reason,
                    });
                }
                Type::Bool
            }
            BinaryOp::Coalesce => {
                let left_type = typed_left.ty.clone();
                let inner = left_type.unwrap_optional().clone();
                // `a ?? b ?? c`: a middle default may itself be absent.
                let wanted = if left_type.is_optional() {
                    inner.clone().optional()
                } else {
                    inner.clone()
                };
                self.expect(&typed_right, &wanted);
                if left_type.is_optional() {
                    if typed_right.ty.is_optional() {
                        typed_right.ty.clone()
                    } else {
                        inner
                    }
                } else {
                    left_type
                }
            }
            BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div => {
                let left_type = self.value_type(&typed_left);
                let right_type = self.value_type(&typed_right);
                match arithmetic(op, &left_type, &right_type) {
                    Some(ty) => {
                        self.quantity_pair(&left_type, &right_type, span);
                        ty
                    }
                    None => {
                        let verb = match op {
                            BinaryOp::Add => "add",
                            BinaryOp::Sub => "subtract",
                            BinaryOp::Mul => "multiply",
                            _ => "divide",
                        };
                        if left_type.is_unit() && right_type.is_unit() {
                            self.report(TypeError::UnitMismatch {
                                span,
                                action: verb.into(),
                                op: op.as_str().into(),
                                left: self.env.type_name(&left_type),
                                right: self.env.type_name(&right_type),
                                help: unit_help(&left_type, &right_type),
                            });
                        } else {
                            let help = if matches!(
                                (&left_type, &right_type),
                                (Type::String, Type::String)
                            ) && op == BinaryOp::Add
                            {
                                Some("build text with interpolation: \"{a}{b}\"".into())
                            } else {
                                None
                            };
                            self.report(TypeError::BadOperands {
                                span,
                                op: op.as_str().into(),
                                left: self.env.describe(&left_type),
                                right: self.env.describe(&right_type),
                                help,
                            });
                        }
                        Type::Error
                    }
                }
            }
        };
        ast::Expr {
            kind: ExprKind::Binary(op, op_span, Box::new(typed_left), Box::new(typed_right)),
            span,
            ty,
        }
    }

    pub(super) fn ordering(
        &mut self,
        op: BinaryOp,
        left: &Type,
        right: &Type,
        span: Span,
        right_expr: &typed::Expr,
    ) {
        if left.is_error() || right.is_error() {
            return;
        }
        let ordered = |ty: &Type| {
            matches!(
                ty,
                Type::Int
                    | Type::Float
                    | Type::Duration
                    | Type::Percent
                    | Type::Size
                    | Type::Time
                    | Type::String
                    | Type::Enum(_)
                    | Type::Quantity
            )
        };
        for side in [left, right] {
            if !ordered(side) {
                self.report(TypeError::NotComparable {
                    span,
                    ty: self.env.type_name(side),
                    op: op.as_str().into(),
                });
                return;
            }
        }
        let same = left == right
            || (left.is_numeric() && right.is_numeric())
            || (matches!(left, Type::Quantity) && right.unit_name().is_some())
            || (matches!(right, Type::Quantity) && left.unit_name().is_some());
        if same {
            self.quantity_pair(left, right, span);
            return;
        }
        self.operand_mismatch("compare", op, left, right, span, right_expr);
    }

    pub(super) fn operand_mismatch(
        &mut self,
        action: &str,
        op: BinaryOp,
        left: &Type,
        right: &Type,
        span: Span,
        right_expr: &typed::Expr,
    ) {
        if left.is_error() || right.is_error() {
            return;
        }
        if left.is_unit() && right.is_unit() {
            self.report(TypeError::UnitMismatch {
                span,
                action: action.into(),
                op: op.as_str().into(),
                left: self.env.type_name(left),
                right: self.env.type_name(right),
                help: unit_help(left, right),
            });
        } else {
            self.report(TypeError::Mismatch {
                span: right_expr.span,
                expected: self.env.describe(left),
                found: self.env.describe(right),
                help: None,
            });
        }
    }

    /// Keeps the unit of `alert.value` consistent within one rule.
    pub(super) fn quantity_pair(&mut self, left: &Type, right: &Type, span: Span) {
        let other = match (left, right) {
            (Type::Quantity, other) | (other, Type::Quantity) => other,
            _ => return,
        };
        self.note_quantity_unit(other, span);
    }

    pub(super) fn note_quantity_unit(&mut self, ty: &Type, span: Span) {
        let Some(unit) = ty.unit_name() else {
            return;
        };
        match self.quantity_unit {
            None => self.quantity_unit = Some((unit, span)),
            Some((first_unit, first)) if first_unit != unit => {
                self.report(TypeError::InconsistentUnit {
                    span,
                    first,
                    unit: unit.into(),
                    first_unit: first_unit.into(),
                });
            }
            Some(_) => {}
        }
    }

    /// The type of a value that is about to be used (compared, computed with, written):
    /// an optional is reported once and its inner type returned.
    pub(super) fn value_type(&mut self, expr: &typed::Expr) -> Type {
        match &expr.ty {
            Type::Optional(inner) => {
                self.unhandled_optional(expr);
                (**inner).clone()
            }
            other => other.clone(),
        }
    }

    pub(super) fn unhandled_optional(&mut self, expr: &typed::Expr) {
        let text = self.text(expr.span).to_string();
        let mut root = expr;
        loop {
            match &root.kind {
                ExprKind::Field(base, _) | ExprKind::Index(base, _) => root = base,
                ExprKind::Paren(inner) => root = inner,
                _ => break,
            }
        }
        let reason = match &root.kind {
            ExprKind::Name(name) => match self.scope_reason(name) {
                Some(reason) => format!(
                    "task `{}` {reason}, so its output may be missing; ",
                    name.name
                ),
                None => String::new(),
            },
            _ => String::new(),
        };
        self.report(TypeError::UnhandledOptional {
            span: expr.span,
            what: format!("`{text}`"),
            ty: self.env.describe(&expr.ty),
            help: Some(format!("{reason}give a default with `{text} ?? ...`")),
        });
    }

    pub(super) fn scope_reason(&self, name: &ast::Ident) -> Option<&'static str> {
        self.absent_reasons.get(&name.name).copied()
    }

    /// Reports a value whose type is not assignable to `want`.
    pub(super) fn expect(&mut self, expr: &typed::Expr, want: &Type) {
        let found = &expr.ty;
        if compatible(found, want) {
            if matches!(found.unwrap_optional(), Type::Quantity) {
                self.note_quantity_unit(want.unwrap_optional(), expr.span);
            }
            return;
        }
        if let Type::Optional(inner) = found
            && compatible(inner, want)
        {
            self.unhandled_optional(expr);
            return;
        }
        let help = match (found, want) {
            (Type::Int, Type::Duration) => Some("give a unit: `5s`, `10m`".into()),
            (Type::Int | Type::Float, Type::Percent) => {
                Some("write a percentage with `%`: `90%`".into())
            }
            (Type::String, Type::Url) => Some(
                "a Url is written as a template here, like \"https://host/{path}\"; \
                 a String could point anywhere"
                    .into(),
            ),
            (Type::String, Type::Enum(id)) => self.env.enum_def(*id).map(|def| {
                format!(
                    "write the variant without quotes: one of {}",
                    def.variants.join(", ")
                )
            }),
            _ => None,
        };
        self.report(TypeError::Mismatch {
            span: expr.span,
            expected: self.env.describe(want),
            found: self.env.describe(found),
            help,
        });
    }

    /// Like [`Checker::expect`] for values that are used directly (conditions, operands).
    pub(super) fn expect_value(&mut self, expr: &typed::Expr, want: &Type) {
        if expr.ty.is_optional() && !want.is_optional() {
            let inner = expr.ty.unwrap_optional();
            if compatible(inner, want) {
                self.unhandled_optional(expr);
                return;
            }
        }
        self.expect(expr, want);
    }
}

fn arithmetic(op: BinaryOp, left: &Type, right: &Type) -> Option<Type> {
    use Type::*;
    if left.is_error() || right.is_error() {
        return Some(Error);
    }
    let number = |ty: &Type| matches!(ty, Int | Float);
    Some(match (op, left, right) {
        (BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul, Int, Int) => Int,
        (BinaryOp::Div, Int, Int) => Float,
        (_, l, r) if number(l) && number(r) => Float,
        (BinaryOp::Add | BinaryOp::Sub, Duration, Duration) => Duration,
        (BinaryOp::Add, Time, Duration)
        | (BinaryOp::Add, Duration, Time)
        | (BinaryOp::Sub, Time, Duration) => Time,
        (BinaryOp::Sub, Time, Time) => Duration,
        (BinaryOp::Add | BinaryOp::Sub, Percent, Percent) => Percent,
        (BinaryOp::Add | BinaryOp::Sub, Size, Size) => Size,
        (BinaryOp::Mul, Duration, r) if number(r) => Duration,
        (BinaryOp::Mul, l, Duration) if number(l) => Duration,
        (BinaryOp::Mul, Percent, r) if number(r) => Percent,
        (BinaryOp::Mul, l, Percent) if number(l) => Percent,
        (BinaryOp::Mul, Size, r) if number(r) => Size,
        (BinaryOp::Mul, l, Size) if number(l) => Size,
        (BinaryOp::Div, Duration, r) if number(r) => Duration,
        (BinaryOp::Div, Percent, r) if number(r) => Percent,
        (BinaryOp::Div, Size, r) if number(r) => Size,
        (BinaryOp::Div, Duration, Duration) | (BinaryOp::Div, Size, Size) => Float,
        _ => return None,
    })
}

fn unit_help(left: &Type, right: &Type) -> Option<String> {
    match (left, right) {
        (Type::Time, Type::Time) => Some("subtract times to get a Duration: `a - b`".into()),
        (Type::Time, _) | (_, Type::Time) => {
            Some("a Time moves by a Duration: `alert.starts_at - 10m`".into())
        }
        (Type::Duration, Type::Int | Type::Float) | (Type::Int | Type::Float, Type::Duration) => {
            Some("give the number a unit, such as `500ms` or `10m`".into())
        }
        (Type::Percent, Type::Int | Type::Float) | (Type::Int | Type::Float, Type::Percent) => {
            Some("write the number as a percentage, such as `90%`".into())
        }
        _ => Some("values of different units cannot be mixed".into()),
    }
}
