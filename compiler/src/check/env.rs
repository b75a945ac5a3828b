//! The standard library environment: stdlib declarations become records, enums and
//! function signatures (`Env`), and type expressions resolve against it.

use super::*;

impl<'a> Checker<'a> {
    pub(crate) fn build_env(&mut self) {
        // First the names, so declarations may refer to each other in any order.
        let mut modules: Vec<(FileId, String)> = Vec::new();
        for (index, parsed) in self.files.iter().enumerate() {
            if !parsed.is_stdlib {
                continue;
            }
            let file = FileId(index as u32);
            let name = parsed
                .ast
                .items
                .iter()
                .find_map(|item| match item {
                    ast::Item::Module(module) => Some(module.name.name.clone()),
                    _ => None,
                })
                .unwrap_or_else(|| {
                    parsed
                        .name
                        .rsplit('/')
                        .next()
                        .unwrap_or("")
                        .trim_end_matches(".ops")
                        .to_string()
                });
            let mut module = ModuleDef {
                name: name.clone(),
                doc: parsed.ast.inner_doc(),
                file,
                records: BTreeMap::new(),
                enums: BTreeMap::new(),
                functions: BTreeMap::new(),
            };
            for item in &parsed.ast.items {
                match item {
                    ast::Item::Record(record) => {
                        let id = crate::types::RecordId(self.env.records.len() as u32);
                        module.records.insert(record.name.name.clone(), id);
                        self.env.records.push(RecordDef {
                            module: name.clone(),
                            name: record.name.name.clone(),
                            fields: Vec::new(),
                            doc: self.doc(file, record.span.start),
                            file,
                            span: record.name.span,
                        });
                    }
                    ast::Item::Enum(decl) => {
                        let id = crate::types::EnumId(self.env.enums.len() as u32);
                        module.enums.insert(decl.name.name.clone(), id);
                        self.env.enums.push(EnumDef {
                            module: name.clone(),
                            name: decl.name.name.clone(),
                            variants: decl
                                .variants
                                .iter()
                                .map(|variant| variant.name.clone())
                                .collect(),
                            doc: self.doc(file, decl.span.start),
                            file,
                            span: decl.name.span,
                        });
                    }
                    _ => {}
                }
            }
            self.env.modules.insert(name.clone(), module);
            modules.push((file, name));
        }
        // Then the fields and signatures.
        for (file, module_name) in modules {
            self.file = file;
            let Some(parsed) = self.files.get(file.0 as usize) else {
                continue;
            };
            for item in &parsed.ast.items {
                match item {
                    ast::Item::Record(record) => {
                        let fields: Vec<FieldDef> = record
                            .fields
                            .iter()
                            .map(|field| FieldDef {
                                name: field.name.name.clone(),
                                ty: self.resolve_type(&field.ty, Some(&module_name)),
                                doc: self.doc(file, field.span.start),
                                span: field.name.span,
                            })
                            .collect();
                        if let Some(id) =
                            self.env.find_record(Some(&module_name), &record.name.name)
                            && let Some(def) = self.env.records.get_mut(id.0 as usize)
                        {
                            def.fields = fields;
                        }
                    }
                    ast::Item::Function(function) => {
                        let params = self.param_defs(&function.params, Some(&module_name));
                        let returns = self.resolve_type(&function.returns, Some(&module_name));
                        let id = FnId(self.env.functions.len() as u32);
                        self.env.functions.push(FnDef {
                            module: module_name.clone(),
                            name: function.name.name.clone(),
                            effect: function.effect,
                            params,
                            returns,
                            revertible: function.revertible,
                            doc: self.doc(file, function.span.start),
                            file,
                            span: function.name.span,
                        });
                        if let Some(module) = self.env.modules.get_mut(&module_name) {
                            module.functions.insert(function.name.name.clone(), id);
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    pub(super) fn param_defs(
        &mut self,
        params: &[ast::Param],
        module: Option<&str>,
    ) -> Vec<ParamDef> {
        let mut defs: Vec<ParamDef> = Vec::new();
        for param in params {
            if let Some(first) = defs.iter().find(|def| def.name == param.name.name) {
                let first = first.span;
                self.report(ResolveError::Duplicate {
                    span: param.name.span,
                    first,
                    kind: "parameter".into(),
                    name: param.name.name.clone(),
                    help: Some("rename one of them".into()),
                });
                continue;
            }
            let ty = self.resolve_type(&param.ty, module);
            let default = param.default.as_ref().map(|default| {
                if !is_constant(default) {
                    self.report(TypeError::NonConstantDefault { span: default.span });
                    return typed_error(default.span);
                }
                let scope = Scope::default();
                let typed = self.expr(default, &scope, Some(&ty));
                self.expect(&typed, &ty);
                typed
            });
            defs.push(ParamDef {
                name: param.name.name.clone(),
                ty,
                default,
                guard: param.guard,
                span: param.name.span,
            });
        }
        defs
    }

    pub(super) fn resolve_type(&mut self, ty: &ast::TypeExpr, module: Option<&str>) -> Type {
        match &ty.kind {
            ast::TypeExprKind::Optional(inner) => self.resolve_type(inner, module).optional(),
            ast::TypeExprKind::List(element) => {
                Type::List(Box::new(self.resolve_type(element, module)))
            }
            ast::TypeExprKind::Map(key, value) => {
                let key_type = self.resolve_type(key, module);
                if !matches!(key_type, Type::String | Type::Error) {
                    self.report(TypeError::Mismatch {
                        span: key.span,
                        expected: "a String".into(),
                        found: self.env.describe(&key_type),
                        help: Some("map keys are always strings".into()),
                    });
                }
                Type::Map(Box::new(self.resolve_type(value, module)))
            }
            ast::TypeExprKind::Named {
                module: qualifier,
                name,
            } => {
                if name.name == "Error" {
                    return Type::Error;
                }
                if qualifier.is_none()
                    && let Some(builtin) = builtin_type(&name.name)
                {
                    return builtin;
                }
                let lookup_module = qualifier.as_ref().map(|q| q.name.as_str()).or(module);
                if let Some(id) = self.env.find_record(lookup_module, &name.name) {
                    self.reference(name.span, Symbol::Record(id), false);
                    return Type::Record(id);
                }
                if let Some(id) = self.env.find_enum(lookup_module, &name.name) {
                    self.reference(name.span, Symbol::Enum(id), false);
                    return Type::Enum(id);
                }
                let mut candidates: Vec<String> =
                    BUILTIN_TYPES.iter().map(|name| name.to_string()).collect();
                for module in self.env.modules.values() {
                    candidates.extend(module.records.keys().cloned());
                    candidates.extend(module.enums.keys().cloned());
                }
                let suggestion = suggest(&name.name, candidates.iter().map(String::as_str));
                self.report_with_fix(
                    ResolveError::UnknownType {
                        span: name.span,
                        name: name.name.clone(),
                        help: did_you_mean(&suggestion).or_else(|| {
                            Some(format!("built-in types are {}", BUILTIN_TYPES.join(", ")))
                        }),
                    },
                    name.span,
                    &suggestion,
                );
                Type::Error
            }
        }
    }

    // ------------------------------------------------------------ user files
}
