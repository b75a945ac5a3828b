//! Expressions: literals, names, fields, calls and their arguments, and the constant
//! values clauses need.

use super::*;

impl<'a> Checker<'a> {
    pub(super) fn const_duration(
        &mut self,
        expr: &ast::Expr,
        scope: &Scope,
        what: &str,
    ) -> Option<i64> {
        let typed = self.expr(expr, scope, Some(&Type::Duration));
        if typed.ty.is_error() {
            return None;
        }
        match typed.unparen().kind {
            ExprKind::Duration(millis) if millis > 0 => Some(millis),
            ExprKind::Duration(_) => {
                self.report(TypeError::OutOfRange {
                    span: typed.span,
                    what: what.to_string(),
                    bound: "longer than zero".into(),
                    help: None,
                });
                None
            }
            _ => {
                self.report(TypeError::Mismatch {
                    span: typed.span,
                    expected: "a Duration literal such as 15m".into(),
                    found: self.env.describe(&typed.ty),
                    help: Some(format!("{what} is fixed when the runbook is written")),
                });
                None
            }
        }
    }

    /// A string literal where a `Url` is expected: the URL's scheme and host must be written
    /// in the runbook's text (values interpolated into the host are checked against the
    /// configuration's allowed hosts at run time), or it must start with a `Url` value it
    /// extends. Credentials never stand in a URL.
    fn url_template(&mut self, parts: &[ast::StrPart<Type>], span: Span) -> Type {
        let starts_with_url = match parts.first() {
            Some(ast::StrPart::Interpolation(base)) => match base.ty.unwrap_optional() {
                Type::Url => true,
                Type::Error => return Type::Error,
                other => {
                    self.report(TypeError::UrlOrigin {
                        span,
                        found: format!("this URL starts with {}", self.env.describe(other)),
                        help: Some(
                            "write the scheme and host here (`\"https://host/{path}\"`), or \
                             take a `Url` parameter: a `String` could point anywhere"
                                .into(),
                        ),
                    });
                    return Type::Error;
                }
            },
            _ => false,
        };
        if starts_with_url {
            // The text after a base URL extends its path, query or fragment, never its host.
            let continues = match parts.get(1) {
                None => true,
                Some(ast::StrPart::Text(text, _)) => text.starts_with(['/', '?', '#']),
                Some(ast::StrPart::Interpolation(_)) => false,
            };
            if !continues {
                self.report(TypeError::UrlOrigin {
                    span,
                    found: "the text after this Url could extend its host".into(),
                    help: Some(
                        "continue a base URL with `/`, `?` or `#`: `\"{base}/health\"`".into(),
                    ),
                });
                return Type::Error;
            }
            return Type::Url;
        }
        // The literal text with each interpolation standing as one placeholder character.
        let mut shape = String::new();
        for part in parts {
            match part {
                ast::StrPart::Text(text, _) => shape.push_str(text),
                ast::StrPart::Interpolation(_) => shape.push('\u{0}'),
            }
        }
        // URL parsers read `\` as `/` in http URLs: a template with one would have a path
        // the checks below and the escaping do not see.
        if shape.contains('\\') {
            self.report(TypeError::UrlOrigin {
                span,
                found: "a `\\` in the URL".into(),
                help: Some("write `/` between path segments".into()),
            });
            return Type::Error;
        }
        let lowered = shape.to_ascii_lowercase();
        let Some(rest) = lowered
            .strip_prefix("https://")
            .or_else(|| lowered.strip_prefix("http://"))
        else {
            self.report(TypeError::UrlOrigin {
                span,
                found: "no `http://` or `https://` at the start".into(),
                help: Some("write the whole URL: `\"https://host/path\"`".into()),
            });
            return Type::Error;
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if authority.contains('@') {
            self.report(TypeError::UrlUserinfo { span });
            return Type::Error;
        }
        if authority.is_empty() {
            self.report(TypeError::UrlOrigin {
                span,
                found: "no host after the scheme".into(),
                help: Some("write the host: `\"https://host/path\"`".into()),
            });
            return Type::Error;
        }
        Type::Url
    }

    pub(super) fn const_int(
        &mut self,
        expr: &ast::Expr,
        scope: &Scope,
        what: &str,
        min: i64,
        max: i64,
    ) -> Option<i64> {
        let typed = self.expr(expr, scope, Some(&Type::Int));
        if typed.ty.is_error() {
            return None;
        }
        let value = match &typed.unparen().kind {
            ExprKind::Int(value) => Some(*value),
            ExprKind::Unary(UnaryOp::Neg, inner) => match inner.unparen().kind {
                ExprKind::Int(value) => Some(-value),
                _ => None,
            },
            _ => None,
        };
        match value {
            Some(value) if (min..=max).contains(&value) => Some(value),
            Some(_) => {
                self.report(TypeError::OutOfRange {
                    span: typed.span,
                    what: format!("the {what}"),
                    bound: format!("between {min} and {max}"),
                    help: None,
                });
                None
            }
            None => {
                self.report(TypeError::Mismatch {
                    span: typed.span,
                    expected: "an Int literal".into(),
                    found: self.env.describe(&typed.ty),
                    help: Some(format!("the {what} is fixed when the runbook is written")),
                });
                None
            }
        }
    }

    // ------------------------------------------------------------ expressions

    /// Checks an expression. `expected` only guides resolution (bare enum variants, empty
    /// lists, record literals); callers check the result with [`Checker::expect`].
    pub(super) fn expr(
        &mut self,
        expr: &ast::Expr,
        scope: &Scope,
        expected: Option<&Type>,
    ) -> typed::Expr {
        let span = expr.span;
        let (kind, ty) = match &expr.kind {
            ExprKind::Int(value) => (ExprKind::Int(*value), Type::Int),
            ExprKind::Float(value) => (ExprKind::Float(*value), Type::Float),
            ExprKind::Bool(value) => (ExprKind::Bool(*value), Type::Bool),
            ExprKind::Duration(value) => (ExprKind::Duration(*value), Type::Duration),
            ExprKind::Percent(value) => (ExprKind::Percent(*value), Type::Percent),
            ExprKind::Size(value) => (ExprKind::Size(*value), Type::Size),
            ExprKind::Time(value) => (ExprKind::Time(*value), Type::Time),
            ExprKind::Str(parts, style) => {
                let mut typed_parts = Vec::new();
                for part in parts {
                    match part {
                        ast::StrPart::Text(text, span) => {
                            typed_parts.push(ast::StrPart::Text(text.clone(), *span))
                        }
                        ast::StrPart::Interpolation(inner) => {
                            let typed = self.expr(inner, scope, None);
                            let ty = self.value_type(&typed);
                            if matches!(ty, Type::Record(_) | Type::Map(_) | Type::AnonRecord(_)) {
                                self.report(TypeError::Mismatch {
                                    span: typed.span,
                                    expected: "a value that can be written as text".into(),
                                    found: self.env.describe(&ty),
                                    help: Some("interpolate one of its fields instead".into()),
                                });
                            }
                            typed_parts.push(ast::StrPart::Interpolation(typed));
                        }
                    }
                }
                let ty = if expected.map(Type::unwrap_optional) == Some(&Type::Url) {
                    self.url_template(&typed_parts, span)
                } else {
                    Type::String
                };
                (ExprKind::Str(typed_parts, *style), ty)
            }
            ExprKind::List(elements) => {
                let expected_element = match expected.map(Type::unwrap_optional) {
                    Some(Type::List(element)) => Some((**element).clone()),
                    _ => None,
                };
                let mut element_type: Option<Type> = expected_element.clone();
                let mut typed_elements = Vec::new();
                for element in elements {
                    let typed = self.expr(element, scope, element_type.as_ref());
                    match &element_type {
                        Some(want) => self.expect(&typed, want),
                        None => element_type = Some(typed.ty.clone()),
                    }
                    typed_elements.push(typed);
                }
                let ty = Type::List(Box::new(element_type.unwrap_or(Type::Error)));
                (ExprKind::List(typed_elements), ty)
            }
            ExprKind::Record(entries) => {
                let mut fields: Vec<(String, Type)> = Vec::new();
                let mut typed_entries = Vec::new();
                for entry in entries {
                    let field_expected = match expected.map(Type::unwrap_optional) {
                        Some(Type::Record(id)) => self
                            .env
                            .record(*id)
                            .and_then(|record| record.field(&entry.key.name))
                            .map(|field| field.ty.clone()),
                        Some(Type::Map(value)) => Some((**value).clone()),
                        _ => None,
                    };
                    if fields.iter().any(|(name, _)| *name == entry.key.name) {
                        self.report(ResolveError::Duplicate {
                            span: entry.key.span,
                            first: entries
                                .iter()
                                .find(|other| other.key.name == entry.key.name)
                                .map_or(entry.key.span, |other| other.key.span),
                            kind: "field".into(),
                            name: entry.key.name.clone(),
                            help: Some("rename one of them".into()),
                        });
                    }
                    let typed = self.expr(&entry.value, scope, field_expected.as_ref());
                    fields.push((entry.key.name.clone(), typed.ty.clone()));
                    typed_entries.push(ast::RecordEntry {
                        key: entry.key.clone(),
                        value: typed,
                    });
                }
                (ExprKind::Record(typed_entries), Type::AnonRecord(fields))
            }
            ExprKind::Name(ident) => {
                let (ty, variant) = self.name(ident, scope, expected);
                if variant {
                    (ExprKind::Variant(ident.clone()), ty)
                } else {
                    (ExprKind::Name(ident.clone()), ty)
                }
            }
            ExprKind::Field(base, field) => return self.field(expr, base, field, scope),
            ExprKind::Call(callee, args) => {
                let (typed, _) = self.call(expr, callee, args, scope);
                return typed;
            }
            ExprKind::Index(base, index) => {
                let typed_base = self.expr(base, scope, None);
                let base_type = self.value_type(&typed_base);
                let (key_type, ty) = match &base_type {
                    Type::Map(value) => (Type::String, (**value).clone().optional()),
                    Type::List(element) => (Type::Int, (**element).clone().optional()),
                    Type::Error => (Type::Error, Type::Error),
                    other => {
                        self.report(TypeError::NotIndexable {
                            span: typed_base.span,
                            ty: self.env.describe(other),
                        });
                        (Type::Error, Type::Error)
                    }
                };
                let typed_index = self.expr(index, scope, Some(&key_type));
                self.expect_value(&typed_index, &key_type);
                (
                    ExprKind::Index(Box::new(typed_base), Box::new(typed_index)),
                    ty,
                )
            }
            ExprKind::Unary(op, operand) => {
                let want = match op {
                    UnaryOp::Not => Some(Type::Bool),
                    UnaryOp::Neg => None,
                };
                let typed = self.expr(operand, scope, want.as_ref());
                let operand_type = self.value_type(&typed);
                let ty = match op {
                    UnaryOp::Not => {
                        self.expect(&typed, &Type::Bool);
                        Type::Bool
                    }
                    UnaryOp::Neg => match operand_type {
                        Type::Int | Type::Float | Type::Duration | Type::Percent | Type::Error => {
                            operand_type
                        }
                        other => {
                            self.report(TypeError::Mismatch {
                                span: typed.span,
                                expected: "a number, Duration or Percent".into(),
                                found: self.env.describe(&other),
                                help: None,
                            });
                            Type::Error
                        }
                    },
                };
                (ExprKind::Unary(*op, Box::new(typed)), ty)
            }
            ExprKind::Binary(op, op_span, left, right) => {
                return self.binary(expr, *op, *op_span, left, right, scope);
            }
            ExprKind::Paren(inner) => {
                let typed = self.expr(inner, scope, expected);
                let ty = typed.ty.clone();
                (ExprKind::Paren(Box::new(typed)), ty)
            }
            // Only the checker produces variants; an untyped tree never holds one.
            ExprKind::Variant(_) | ExprKind::Error => (ExprKind::Error, Type::Error),
        };
        ast::Expr { kind, span, ty }
    }

    /// Resolves a bare name; the flag says whether it is an enum variant.
    pub(super) fn name(
        &mut self,
        ident: &ast::Ident,
        scope: &Scope,
        expected: Option<&Type>,
    ) -> (Type, bool) {
        if let Some(binding) = scope.bindings.get(&ident.name) {
            self.used.insert(ident.name.clone());
            let symbol = match binding.kind {
                BindingKind::Task => {
                    self.task_refs.push(ident.name.clone());
                    Symbol::Task {
                        playbook: self.current_playbook.clone(),
                        task: ident.name.clone(),
                    }
                }
                BindingKind::Param => Symbol::Param {
                    playbook: self.current_playbook.clone(),
                    param: ident.name.clone(),
                },
                BindingKind::Alert => Symbol::Alert,
            };
            self.reference(ident.span, symbol, false);
            return (binding.ty.clone(), false);
        }
        if let Some(Type::Enum(id)) = expected.map(Type::unwrap_optional) {
            let id = *id;
            if let Some(def) = self.env.enum_def(id) {
                if def.variants.contains(&ident.name) {
                    self.reference(ident.span, Symbol::Variant(id, ident.name.clone()), false);
                    return (Type::Enum(id), true);
                }
                let suggestion = suggest(&ident.name, def.variants.iter().map(String::as_str));
                let help = did_you_mean(&suggestion)
                    .or_else(|| Some(format!("`{}` has {}", def.name, def.variants.join(", "))));
                let enum_name = def.name.clone();
                self.report_with_fix(
                    ResolveError::UnknownVariant {
                        span: ident.span,
                        name: ident.name.clone(),
                        enum_name,
                        help,
                    },
                    ident.span,
                    &suggestion,
                );
                return (Type::Error, false);
            }
        }
        let help = if ident.name == "alert" {
            Some(
                "`alert` exists only in rules; pass what the playbook needs as a parameter"
                    .to_string(),
            )
        } else if self.env.modules.contains_key(&ident.name) {
            Some(format!(
                "`{}` is a module; call its functions in a task: `{}.function(...)`",
                ident.name, ident.name
            ))
        } else {
            None
        };
        let suggestion = suggest(&ident.name, scope.bindings.keys().map(String::as_str));
        self.report_with_fix(
            ResolveError::UnknownName {
                span: ident.span,
                name: ident.name.clone(),
                help: help.or_else(|| did_you_mean(&suggestion)),
            },
            ident.span,
            &suggestion,
        );
        (Type::Error, false)
    }

    pub(super) fn field(
        &mut self,
        expr: &ast::Expr,
        base: &ast::Expr,
        field: &ast::Ident,
        scope: &Scope,
    ) -> typed::Expr {
        // `Severity.critical`: a qualified enum variant.
        if let Some(name) = base.as_name()
            && !scope.bindings.contains_key(&name.name)
            && let Some(id) = self.env.find_enum(None, &name.name)
        {
            let variants = self
                .env
                .enum_def(id)
                .map(|def| def.variants.clone())
                .unwrap_or_default();
            let ty = if variants.contains(&field.name) {
                self.reference(name.span, Symbol::Enum(id), false);
                self.reference(field.span, Symbol::Variant(id, field.name.clone()), false);
                Type::Enum(id)
            } else {
                let suggestion = suggest(&field.name, variants.iter().map(String::as_str));
                self.report_with_fix(
                    ResolveError::UnknownVariant {
                        span: field.span,
                        name: field.name.clone(),
                        enum_name: name.name.clone(),
                        help: did_you_mean(&suggestion),
                    },
                    field.span,
                    &suggestion,
                );
                Type::Error
            };
            return ast::Expr {
                kind: ExprKind::Variant(field.clone()),
                span: expr.span,
                ty,
            };
        }
        let typed_base = self.expr(base, scope, None);
        let base_type = typed_base.ty.clone();
        let optional = base_type.is_optional();
        let field_type = match base_type.unwrap_optional() {
            Type::Error => Type::Error,
            Type::Record(id) => {
                let record = self.env.record(*id);
                match record.and_then(|record| record.field(&field.name)) {
                    Some(def) => {
                        let ty = def.ty.clone();
                        self.reference(field.span, Symbol::Field(*id, field.name.clone()), false);
                        ty
                    }
                    None => {
                        let names: Vec<String> = record
                            .map(|record| {
                                record
                                    .fields
                                    .iter()
                                    .map(|field| field.name.clone())
                                    .collect()
                            })
                            .unwrap_or_default();
                        let suggestion = suggest(&field.name, names.iter().map(String::as_str));
                        let help = did_you_mean(&suggestion)
                            .or_else(|| Some(format!("its fields are {}", names.join(", "))));
                        self.report_with_fix(
                            TypeError::UnknownField {
                                span: field.span,
                                field: field.name.clone(),
                                ty: self.env.type_name(base_type.unwrap_optional()),
                                help,
                            },
                            field.span,
                            &suggestion,
                        );
                        Type::Error
                    }
                }
            }
            Type::AnonRecord(fields) => match fields.iter().find(|(name, _)| *name == field.name) {
                Some((_, ty)) => ty.clone(),
                None => {
                    self.report(TypeError::UnknownField {
                        span: field.span,
                        field: field.name.clone(),
                        ty: "this record".into(),
                        help: None,
                    });
                    Type::Error
                }
            },
            other => {
                let help = if matches!(other, Type::Map(_)) {
                    Some(format!("maps are read with `[\"{}\"]`", field.name))
                } else {
                    None
                };
                self.report(TypeError::UnknownField {
                    span: field.span,
                    field: field.name.clone(),
                    ty: self.env.type_name(other),
                    help,
                });
                Type::Error
            }
        };
        // Reading a field of a value that may be absent gives a value that may be absent.
        let ty = if optional {
            field_type.optional()
        } else {
            field_type
        };
        ast::Expr {
            kind: ExprKind::Field(Box::new(typed_base), field.clone()),
            span: expr.span,
            ty,
        }
    }

    /// Checks a call `module.function(args)`. Returns the typed call (arguments normalized:
    /// every parameter named, in declaration order, defaults filled in) and the function.
    pub(super) fn call(
        &mut self,
        expr: &ast::Expr,
        callee: &ast::Expr,
        args: &[ast::Arg],
        scope: &Scope,
    ) -> (typed::Expr, Option<FnId>) {
        let calls_allowed = std::mem::replace(&mut self.calls_allowed, false);
        let mut resolved: Option<FnId> = None;
        if let ExprKind::Field(base, name) = &callee.kind {
            // In callee position a module name wins over a task or parameter of the same
            // name (`task logs = logs.aggregate(...)`): only module functions can be called.
            let is_module = |name: &ast::Ident| {
                let has_functions = self
                    .env
                    .modules
                    .get(&name.name)
                    .is_some_and(|module| !module.functions.is_empty());
                has_functions || !scope.bindings.contains_key(&name.name)
            };
            if let Some(module) = base.as_name().filter(|module| is_module(module)) {
                if let Some(module_def) = self.env.modules.get(&module.name).cloned() {
                    if !scope.imports.contains(&module.name) && module.name != "alert" {
                        self.report(ResolveError::ModuleNotImported {
                            span: module.span,
                            module: module.name.clone(),
                        });
                    }
                    self.used_modules.insert((self.file, module.name.clone()));
                    self.reference(module.span, Symbol::Module(module.name.clone()), false);
                    match module_def.functions.get(&name.name) {
                        Some(id) => {
                            resolved = Some(*id);
                            self.reference(name.span, Symbol::Function(*id), false);
                        }
                        None => {
                            let suggestion = suggest(
                                &name.name,
                                module_def.functions.keys().map(String::as_str),
                            );
                            let help = did_you_mean(&suggestion).or_else(|| {
                                Some(format!(
                                    "std.{} has {}",
                                    module.name,
                                    module_def
                                        .functions
                                        .keys()
                                        .cloned()
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                ))
                            });
                            self.report_with_fix(
                                ResolveError::UnknownFunction {
                                    span: name.span,
                                    module: module.name.clone(),
                                    name: name.name.clone(),
                                    help,
                                },
                                name.span,
                                &suggestion,
                            );
                        }
                    }
                } else {
                    let suggestion =
                        suggest(&module.name, self.env.modules.keys().map(String::as_str));
                    self.report_with_fix(
                        ResolveError::UnknownModule {
                            span: module.span,
                            name: module.name.clone(),
                            help: did_you_mean(&suggestion),
                        },
                        module.span,
                        &suggestion,
                    );
                }
            } else {
                // `value.method()`: check the value; the call is the one mistake.
                let _ = self.expr(base, scope, None);
                self.report(TypeError::NotCallable { span: callee.span });
            }
        } else if !matches!(callee.kind, ExprKind::Error) {
            if let Some(name) = callee
                .as_name()
                .filter(|name| self.playbook_sigs.contains_key(&name.name))
            {
                self.report(TypeError::PlaybookCall {
                    span: callee.span,
                    name: name.name.clone(),
                });
            } else {
                let _ = self.expr(callee, scope, None);
                self.report(TypeError::NotCallable { span: callee.span });
            }
        }

        let def = resolved.and_then(|id| self.env.function(id)).cloned();
        let Some(def) = def else {
            for arg in args {
                let _ = self.expr(&arg.value, scope, None);
            }
            return (typed_error(expr.span), None);
        };
        if !calls_allowed {
            self.report(TypeError::CallOutsideTask {
                span: expr.span,
                function: def.qualified_name(),
            });
        }
        let checked = self.args(&def.qualified_name(), &def.params, args, expr.span, scope);
        let typed_args = checked
            .into_iter()
            .map(|(name, value, span)| ast::Arg {
                name: Some(ast::Ident { name, span }),
                value,
                span,
            })
            .collect();
        let typed_callee = ast::Expr {
            kind: ExprKind::Name(ast::Ident {
                name: def.qualified_name(),
                span: callee.span,
            }),
            span: callee.span,
            ty: Type::Error,
        };
        (
            ast::Expr {
                kind: ExprKind::Call(Box::new(typed_callee), typed_args),
                span: expr.span,
                ty: def.returns.clone(),
            },
            resolved,
        )
    }

    /// Matches arguments to parameters. Returns one entry per parameter, in declaration
    /// order: its name, its value (given, default, or an error node) and the argument span.
    pub(super) fn args(
        &mut self,
        function: &str,
        params: &[ParamDef],
        args: &[ast::Arg],
        call_span: Span,
        scope: &Scope,
    ) -> Vec<(String, typed::Expr, Span)> {
        let mut given: Vec<Option<(typed::Expr, Span)>> = vec![None; params.len()];
        let mut seen_named = false;
        // After a broken argument, a "missing argument" would only repeat the same mistake.
        let mut broken_argument = false;
        for (position, arg) in args.iter().enumerate() {
            let index = match &arg.name {
                Some(name) => {
                    seen_named = true;
                    match params.iter().position(|param| param.name == name.name) {
                        Some(index) => index,
                        None => {
                            let suggestion =
                                suggest(&name.name, params.iter().map(|param| param.name.as_str()));
                            let help = did_you_mean(&suggestion).or_else(|| {
                                Some(format!(
                                    "its parameters are {}",
                                    params
                                        .iter()
                                        .map(|param| param.name.as_str())
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                ))
                            });
                            self.report_with_fix(
                                TypeError::UnknownArgument {
                                    span: name.span,
                                    name: name.name.clone(),
                                    function: function.to_string(),
                                    help,
                                },
                                name.span,
                                &suggestion,
                            );
                            let _ = self.expr(&arg.value, scope, None);
                            broken_argument = true;
                            continue;
                        }
                    }
                }
                None => {
                    if seen_named {
                        self.report(TypeError::PositionalAfterNamed { span: arg.span });
                        let _ = self.expr(&arg.value, scope, None);
                        broken_argument = true;
                        continue;
                    }
                    if position >= params.len() {
                        self.report(TypeError::TooManyArguments {
                            span: arg.span,
                            function: function.to_string(),
                            max: params.len(),
                        });
                        let _ = self.expr(&arg.value, scope, None);
                        continue;
                    }
                    position
                }
            };
            let Some(param) = params.get(index) else {
                continue;
            };
            if let Some(Some((_, first))) = given.get(index) {
                self.report(TypeError::DuplicateArgument {
                    span: arg.span,
                    first: *first,
                    name: param.name.clone(),
                });
                let _ = self.expr(&arg.value, scope, None);
                continue;
            }
            let typed = self.expr(&arg.value, scope, Some(&param.ty));
            self.expect(&typed, &param.ty);
            if let Some(slot) = given.get_mut(index) {
                *slot = Some((typed, arg.span));
            }
        }
        let mut result = Vec::new();
        for (param, value) in params.iter().zip(given) {
            let (value, span) = match value {
                Some(value) => value,
                None => {
                    if param.required() && !broken_argument {
                        if param.guard {
                            self.report(GuardError::MissingLimit {
                                span: call_span,
                                function: function.to_string(),
                                param: param.name.clone(),
                            });
                        } else {
                            self.report(TypeError::MissingArgument {
                                span: call_span,
                                name: param.name.clone(),
                                function: function.to_string(),
                                ty: self.env.type_name(&param.ty),
                            });
                        }
                    }
                    let default = param
                        .default
                        .clone()
                        .unwrap_or_else(|| typed_error(call_span));
                    (default, call_span)
                }
            };
            result.push((param.name.clone(), value, span));
        }
        result
    }
}
