//! Rendering model SQL with a real Jinja engine (minijinja): dbt's `ref`, `source`,
//! `config`, `var`, `env_var`, `is_incremental`, `this`, `doc`, `target`, the project's
//! macros (each file of `macros/` imported into every model, as dbt makes them global), and
//! Python's string and dict methods (minijinja-contrib's pycompat).
//!
//! One [`Renderer`] per compile of the project. The functions are closures over a shared
//! [`Scope`] that the compiler fills before each render (the model being rendered, the
//! pass, the names refs resolve to) and reads after it (what the model referenced and
//! configured): that is how a macro deep inside an imported file still records a `ref()`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use minijinja::value::{Kwargs, Object, Rest, Value};
use minijinja::{Environment, Error, ErrorKind, State};

use crate::db::warehouse::sql_ident;
use crate::locks::lock;

/// Instructions one render may execute: a few hundred times what a large model needs.
const FUEL: u64 = 50_000_000;

/// Whether models may read the environment variable `name`: dbt's `DBT_` variables, but
/// not `DBT_ENV_SECRET_` ones (dbt keeps those out of models too) — the server's own
/// environment (secrets, tokens) never reaches SQL that viewers can read.
fn readable_env_var(name: &str) -> bool {
    name.starts_with("DBT_") && !name.starts_with("DBT_ENV_SECRET")
}

/// A relation as templates see it: `{{ this }}` renders `"schema"."name"`; `.schema`,
/// `.identifier`, `.name` and `.database` read its parts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Relation {
    pub(crate) schema: String,
    pub(crate) name: String,
}

impl Relation {
    pub(crate) fn new(schema: &str, name: &str) -> Self {
        Self {
            schema: schema.to_owned(),
            name: name.to_owned(),
        }
    }

    /// The relation as SQL.
    pub(crate) fn sql(&self) -> String {
        format!("{}.{}", sql_ident(&self.schema), sql_ident(&self.name))
    }

    /// `schema.name` in lower case: how DuckDB matches it.
    pub(crate) fn key(&self) -> String {
        format!(
            "{}.{}",
            self.schema.to_ascii_lowercase(),
            self.name.to_ascii_lowercase()
        )
    }
}

impl std::fmt::Display for Relation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.sql())
    }
}

/// What `ref()` gives in the compile pass.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    Relation(Relation),
    /// An ephemeral model: inlined as this CTE.
    Cte(String),
}

/// The name of the CTE an ephemeral model is inlined as (dbt's spelling).
pub(crate) fn cte_name(model: &str) -> String {
    format!("__dbt__cte__{model}")
}

/// Which render: the parse pass finds refs and configs (refs render placeholders); the
/// compile pass renders the SQL that runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Pass {
    #[default]
    Parse,
    Compile,
}

/// The shared state of one render.
#[derive(Debug, Default)]
pub(crate) struct Scope {
    pub(crate) pass: Pass,
    pub(crate) this: Option<Relation>,
    pub(crate) incremental: bool,
    /// Compile pass: what each model or seed name resolves to.
    pub(crate) refs: Arc<BTreeMap<String, Target>>,
    /// Compile pass: (source, table) → relation.
    pub(crate) sources: Arc<BTreeMap<(String, String), Relation>>,
    /// Filled by the render.
    pub(crate) used_refs: Vec<String>,
    pub(crate) used_sources: Vec<(String, String)>,
    pub(crate) config: Vec<serde_yaml::Value>,
}

/// A compiled environment: the macros added, the functions bound to one [`Scope`].
pub(crate) struct Renderer {
    env: Environment<'static>,
    scope: Arc<Mutex<Scope>>,
    /// `{% from "<macro file>" import a, b %}` for every macro file: put in front of each
    /// template on its first line, so line numbers stay the file's own.
    imports: String,
}

/// The dbt `{% test name(args) %}` block is a macro named `test_name`.
fn macro_source(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{%") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("%}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let inner = &after[..end];
        let dash_l = inner.starts_with('-');
        let dash_r = inner.ends_with('-');
        let tag = inner.trim_matches(|c: char| c == '-' || c.is_whitespace());
        let l = if dash_l { "-" } else { "" };
        let r = if dash_r { "-" } else { "" };
        if let Some(def) = tag.strip_prefix("test ") {
            out.push_str(&format!("{{%{l} macro test_{} {r}%}}", def.trim()));
        } else if tag == "endtest" {
            out.push_str(&format!("{{%{l} endmacro {r}%}}"));
        } else {
            out.push_str(&rest[start..start + 2 + end + 2]);
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

/// The macro names a macro file defines (`{% macro name(` and `{% test name(`).
pub(crate) fn macro_names(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{%") {
        let after = &rest[start + 2..];
        let tag = after.trim_start_matches(['-', ' ', '\t', '\n', '\r']);
        let (prefix, body) = if let Some(b) = tag.strip_prefix("macro ") {
            ("", b)
        } else if let Some(b) = tag.strip_prefix("test ") {
            ("test_", b)
        } else {
            rest = after;
            continue;
        };
        let name: String = body
            .trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.push(format!("{prefix}{name}"));
        }
        rest = after;
    }
    out
}

impl Renderer {
    /// An environment with the project's `macros` (path, text), its `vars` and doc
    /// blocks. Errors name the macro file and line.
    pub(crate) fn new(
        macros: &[(String, String)],
        vars: BTreeMap<String, serde_json::Value>,
        docs: BTreeMap<String, String>,
        project: &str,
    ) -> Result<Self, Vec<(String, Option<usize>, String)>> {
        let mut env = Environment::new();
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.set_keep_trailing_newline(true);
        // A template is code an editor wrote: a loop of loops must not hold the compile
        // (and the warehouse lane it runs on) forever.
        env.set_fuel(Some(FUEL));
        let scope = Arc::new(Mutex::new(Scope::default()));
        let mut errors = Vec::new();
        let mut imports = String::new();
        for (path, text) in macros {
            let names = macro_names(text);
            if let Err(e) = env.add_template_owned(path.clone(), macro_source(text)) {
                errors.push((path.clone(), e.line(), describe(&e)));
                continue;
            }
            if !names.is_empty() {
                imports.push_str(&format!(
                    "{{% from {} import {} %}}",
                    serde_json::to_string(path).unwrap_or_default(),
                    names.join(", ")
                ));
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        register(&mut env, &scope, vars, docs, project);
        Ok(Self {
            env,
            scope,
            imports,
        })
    }

    /// Renders `text` (the file at `path`) with `scope` set; returns the SQL and the scope
    /// as the render left it.
    pub(crate) fn render(
        &self,
        path: &str,
        text: &str,
        scope: Scope,
    ) -> Result<(String, Scope), (Option<usize>, String)> {
        *lock(&self.scope) = scope;
        let source = format!("{}{text}", self.imports);
        let rendered = self
            .env
            .template_from_named_str(path, &source)
            .and_then(|t| t.render(minijinja::context! {}));
        let scope = std::mem::take(&mut *lock(&self.scope));
        match rendered {
            Ok(sql) => Ok((sql, scope)),
            Err(e) => Err((e.line(), describe(&e))),
        }
    }
}

/// What went wrong, without minijinja's "(in file:line)" suffix: the caller names those.
fn describe(e: &Error) -> String {
    let mut text = match e.detail() {
        Some(d) => format!("{}: {d}", e.kind()),
        None => e.kind().to_string(),
    };
    // An error raised inside a macro: say where.
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        if let Some(inner) = inner.downcast_ref::<Error>()
            && let (Some(name), Some(line)) = (inner.name(), inner.line())
        {
            text.push_str(&format!(" (in {name}, line {line})"));
        }
        source = inner.source();
    }
    text
}

fn register(
    env: &mut Environment<'static>,
    scope: &Arc<Mutex<Scope>>,
    vars: BTreeMap<String, serde_json::Value>,
    docs: BTreeMap<String, String>,
    project: &str,
) {
    let s = scope.clone();
    let project_name = project.to_owned();
    env.add_function(
        "ref",
        move |args: Rest<Value>, _kw: Kwargs| -> Result<Value, Error> {
            let names: Vec<String> = args
                .iter()
                .map(|a| a.as_str().map(str::to_owned))
                .collect::<Option<_>>()
                .ok_or_else(|| invalid("ref() takes model names as strings"))?;
            let name = match names.as_slice() {
                [name] => name.clone(),
                [package, name] if *package == project_name => name.clone(),
                [package, _] => {
                    return Err(invalid(format!(
                        "ref({package:?}, …): packages are not installed here; only this \
                         project ({project_name:?}) can be referenced"
                    )));
                }
                _ => return Err(invalid("ref() takes a model name")),
            };
            let mut scope = lock(&s);
            if !scope.used_refs.contains(&name) {
                scope.used_refs.push(name.clone());
            }
            match scope.pass {
                Pass::Parse => Ok(relation(Relation::new("main", &name))),
                Pass::Compile => match scope.refs.get(&name) {
                    Some(Target::Relation(r)) => Ok(relation(r.clone())),
                    Some(Target::Cte(cte)) => Ok(Value::from_safe_string(cte.clone())),
                    None => Err(invalid(format!(
                        "ref({name:?}): there is no model or seed named {name}"
                    ))),
                },
            }
        },
    );
    let s = scope.clone();
    env.add_function(
        "source",
        move |source: String, table: String| -> Result<Value, Error> {
            let mut scope = lock(&s);
            let key = (source.clone(), table.clone());
            if !scope.used_sources.contains(&key) {
                scope.used_sources.push(key.clone());
            }
            match scope.pass {
                Pass::Parse => Ok(relation(Relation::new(&format!("raw_{source}"), &table))),
                Pass::Compile => match scope.sources.get(&key) {
                    Some(r) => Ok(relation(r.clone())),
                    None => Err(invalid(format!(
                        "source({source:?}, {table:?}): no such source table (Kura sources \
                         and sources: declared in property files)"
                    ))),
                },
            }
        },
    );
    let s = scope.clone();
    env.add_function("config", move |kwargs: Kwargs| -> Result<Value, Error> {
        let mut map = serde_yaml::Mapping::new();
        for key in kwargs.args() {
            let value: Value = kwargs.get(key)?;
            let yaml = serde_yaml::to_value(&value)
                .map_err(|e| invalid(format!("config({key}=…): {e}")))?;
            map.insert(serde_yaml::Value::String(key.to_owned()), yaml);
        }
        lock(&s).config.push(serde_yaml::Value::Mapping(map));
        Ok(Value::from(""))
    });
    let s = scope.clone();
    env.add_function("is_incremental", move || -> bool { lock(&s).incremental });
    let vars = Arc::new(vars);
    env.add_function(
        "var",
        move |name: String, default: Option<Value>| -> Result<Value, Error> {
            match (vars.get(&name), default) {
                (Some(v), _) => Ok(Value::from_serialize(v)),
                (None, Some(d)) => Ok(d),
                (None, None) => Err(invalid(format!(
                    "var({name:?}) is not set in dbt_project.yml vars and has no default"
                ))),
            }
        },
    );
    env.add_function(
        "env_var",
        |name: String, default: Option<String>| -> Result<String, Error> {
            if !readable_env_var(&name) {
                return Err(invalid(format!(
                    "env_var({name:?}): models may read only DBT_* variables (not \
                     DBT_ENV_SECRET_*); the server's other variables stay out of SQL"
                )));
            }
            match (std::env::var(&name), default) {
                (Ok(v), _) => Ok(v),
                (Err(_), Some(d)) => Ok(d),
                (Err(_), None) => Err(invalid(format!(
                    "env_var({name:?}): the variable is not set and has no default"
                ))),
            }
        },
    );
    let docs = Arc::new(docs);
    env.add_function("doc", move |name: String| -> Result<String, Error> {
        docs.get(&name)
            .cloned()
            .ok_or_else(|| invalid(format!("doc({name:?}): no {{% docs {name} %}} block")))
    });
    env.add_function("log", |_msg: Value, _kw: Kwargs| "");
    env.add_global(
        "this",
        Value::from_object(This {
            scope: scope.clone(),
        }),
    );
    env.add_global(
        "target",
        minijinja::context! {
            name => "dev", schema => "main", type => "duckdb", database => "warehouse",
            profile_name => "kura", threads => 1,
        },
    );
    env.add_global("exceptions", Value::from_object(Exceptions));
    env.add_global("project_name", project);
}

fn invalid(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, message.into())
}

fn relation(r: Relation) -> Value {
    Value::from_object(r)
}

impl Object for Relation {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        match key.as_str()? {
            "schema" => Some(Value::from(self.schema.clone())),
            "identifier" | "name" | "table" => Some(Value::from(self.name.clone())),
            "database" => Some(Value::from("warehouse")),
            _ => None,
        }
    }

    fn render(self: &Arc<Self>, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.sql())
    }
}

/// `this`: the relation of the model being rendered.
#[derive(Debug)]
struct This {
    scope: Arc<Mutex<Scope>>,
}

impl This {
    fn current(&self) -> Option<Relation> {
        lock(&self.scope).this.clone()
    }
}

impl Object for This {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        Arc::new(self.current()?).get_value(key)
    }

    fn render(self: &Arc<Self>, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.current() {
            Some(r) => f.write_str(&r.sql()),
            None => Ok(()),
        }
    }
}

/// `exceptions.raise_compiler_error(msg)` and `exceptions.warn(msg)`.
#[derive(Debug)]
struct Exceptions;

impl Object for Exceptions {
    fn call_method(
        self: &Arc<Self>,
        _state: &State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        let message = args.first().map(|v| v.to_string()).unwrap_or_default();
        match method {
            "raise_compiler_error" => Err(invalid(message)),
            "warn" => {
                tracing::warn!(%message, "model warning");
                Ok(Value::from(""))
            }
            _ => Err(Error::from(ErrorKind::UnknownMethod)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn renderer(macros: &[(&str, &str)]) -> Renderer {
        let macros: Vec<(String, String)> = macros
            .iter()
            .map(|(p, t)| ((*p).to_owned(), (*t).to_owned()))
            .collect();
        let vars = BTreeMap::from([("since".to_owned(), serde_json::json!("2024-01-01"))]);
        let docs = BTreeMap::from([("status".to_owned(), "The status.".to_owned())]);
        Renderer::new(&macros, vars, docs, "shop")
            .map_err(|e| format!("{e:?}"))
            .unwrap()
    }

    fn compile_scope() -> Scope {
        Scope {
            pass: Pass::Compile,
            this: Some(Relation::new("marts", "orders")),
            refs: Arc::new(BTreeMap::from([
                (
                    "stg_orders".to_owned(),
                    Target::Relation(Relation::new("main", "stg_orders")),
                ),
                ("eph".to_owned(), Target::Cte(cte_name("eph"))),
            ])),
            sources: Arc::new(BTreeMap::from([(
                ("shop".to_owned(), "orders".to_owned()),
                Relation::new("raw_shop", "orders"),
            )])),
            ..Scope::default()
        }
    }

    #[test]
    fn refs_sources_loops_vars_and_macros_render_and_are_recorded() {
        let r = renderer(&[
            (
                "macros/cents.sql",
                "{% macro cents(col, scale=2) -%} round({{ col }} / 100, {{ scale }}) {%- endmacro %}\n\
                 {% macro uses_ref() %}{{ ref('stg_orders') }}{% endmacro %}",
            ),
            (
                "macros/other.sql",
                "{% macro twice(x) %}{{ cents(x) }} + {{ cents(x) }}{% endmacro %}",
            ),
        ]);
        let sql = "{{ config(materialized='table', unique_key=['id']) }}\n\
                   {%- set methods = ['card', 'coupon'] -%}\n\
                   select {% for m in methods %}sum(case when m = '{{ m.upper() }}' then {{ cents('amount') }} end) as {{ m }}{% if not loop.last %}, {% endif %}{% endfor %}\n\
                   from {{ uses_ref() }} join {{ source('shop', 'orders') }} using (id)\n\
                   where d >= '{{ var(\"since\") }}' {# a comment #} and {{ this.schema }} = 'marts'";
        let (out, scope) = r.render("models/orders.sql", sql, compile_scope()).unwrap();
        assert!(
            out.contains("sum(case when m = 'CARD' then round(amount / 100, 2) end) as card, sum"),
            "{out}"
        );
        assert!(
            out.contains("from \"main\".\"stg_orders\" join \"raw_shop\".\"orders\""),
            "{out}"
        );
        assert!(
            out.contains("d >= '2024-01-01'  and marts = 'marts'"),
            "{out}"
        );
        assert_eq!(scope.used_refs, ["stg_orders"]);
        assert_eq!(
            scope.used_sources,
            [("shop".to_owned(), "orders".to_owned())]
        );
        assert_eq!(scope.config.len(), 1);
        // Macros of one file call those of another.
        let (out, _) = r
            .render("models/t.sql", "select {{ twice('x') }}", compile_scope())
            .unwrap();
        assert_eq!(out, "select round(x / 100, 2) + round(x / 100, 2)");
    }

    #[test]
    fn ephemeral_refs_render_as_their_cte_and_this_and_is_incremental_follow_the_scope() {
        let r = renderer(&[]);
        let mut scope = compile_scope();
        scope.incremental = true;
        let (out, _) = r
            .render(
                "models/m.sql",
                "select * from {{ ref('eph') }}{% if is_incremental() %} where t > (select max(t) from {{ this }}){% endif %}",
                scope,
            )
            .unwrap();
        assert_eq!(
            out,
            "select * from __dbt__cte__eph where t > (select max(t) from \"marts\".\"orders\")"
        );
    }

    #[test]
    fn errors_name_the_line_and_what_went_wrong() {
        let r = renderer(&[]);
        let (line, message) = r
            .render(
                "models/m.sql",
                "select 1\nfrom {{ ref('nope') }}",
                compile_scope(),
            )
            .unwrap_err();
        assert_eq!(line, Some(2));
        assert!(message.contains("no model or seed named nope"), "{message}");
        let (line, message) = r
            .render("models/m.sql", "select\n\n{% if %}", compile_scope())
            .unwrap_err();
        assert_eq!(line, Some(3));
        assert!(message.contains("syntax error"), "{message}");
        let (_, message) = r
            .render("models/m.sql", "{{ var('missing') }}", compile_scope())
            .unwrap_err();
        assert!(message.contains("missing"), "{message}");
        let (_, message) = r
            .render(
                "models/m.sql",
                "{{ exceptions.raise_compiler_error('bad input') }}",
                compile_scope(),
            )
            .unwrap_err();
        assert!(message.contains("bad input"), "{message}");
    }

    #[test]
    fn env_vars_are_dbts_only_and_runaway_loops_run_out_of_fuel() {
        let r = renderer(&[]);
        let (_, message) = r
            .render("m", "{{ env_var('HOME') }}", compile_scope())
            .unwrap_err();
        assert!(message.contains("only DBT_"), "{message}");
        let (_, message) = r
            .render(
                "m",
                "{{ env_var('DBT_ENV_SECRET_KEY', 'x') }}",
                compile_scope(),
            )
            .unwrap_err();
        assert!(message.contains("only DBT_"), "{message}");
        let (out, _) = r
            .render(
                "m",
                "{{ env_var('DBT_KURA_UNSET_VAR', 'dflt') }}",
                compile_scope(),
            )
            .unwrap();
        assert_eq!(out, "dflt");
        let (_, message) = r
            .render(
                "m",
                "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
                compile_scope(),
            )
            .unwrap_err();
        assert!(message.contains("fuel"), "{message}");
    }

    #[test]
    fn test_blocks_become_macros_named_test_x() {
        assert_eq!(
            macro_names(
                "{% test positive(model, column_name) %}x{% endtest %}{%- macro a() -%}{% endmacro %}"
            ),
            ["test_positive", "a"]
        );
        let r = renderer(&[(
            "macros/t.sql",
            "{% test positive(model, column_name) %}select * from {{ model }} where {{ column_name }} < 0{% endtest %}",
        )]);
        let (out, _) = r
            .render(
                "t",
                "{{ test_positive(model='m', column_name='c') }}",
                compile_scope(),
            )
            .unwrap();
        assert_eq!(out, "select * from m where c < 0");
    }
}
