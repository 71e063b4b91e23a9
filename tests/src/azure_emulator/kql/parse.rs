//! The parser of the emulator's KQL: tokens, then a query (`union` of parenthesised queries or a
//! table, then `| operator` steps) with its scalar expressions. What it does not know is a syntax
//! error.

use serde_json::{Value, json};

use super::KqlError;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(f64),
    Sym(&'static str),
}

fn lex(q: &str) -> Result<Vec<Tok>, KqlError> {
    const SYMS: [&str; 16] = [
        "==", "=~", "!=", ">=", "<=", "|", "(", ")", ",", ".", "=", ">", "<", "/", "[", "]",
    ];
    let b: Vec<char> = q.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' || c == '"' {
            let mut s = String::new();
            i += 1;
            loop {
                match b.get(i) {
                    None => return Err(KqlError::Syntax("unterminated string literal".into())),
                    Some('\\') => {
                        match b.get(i + 1) {
                            Some('n') => s.push('\n'),
                            Some(&x) => s.push(x),
                            None => return Err(KqlError::Syntax("bad escape".into())),
                        }
                        i += 2;
                    }
                    Some(&x) if x == c => {
                        i += 1;
                        break;
                    }
                    Some(&x) => {
                        s.push(x);
                        i += 1;
                    }
                }
            }
            out.push(Tok::Str(s));
        } else if c.is_ascii_digit() {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == '.') {
                i += 1;
            }
            let text: String = b[start..i].iter().collect();
            // a timespan literal (2d, 10m) stays text for ago()
            match text.parse::<f64>() {
                Ok(n) => out.push(Tok::Num(n)),
                Err(_) => out.push(Tok::Ident(text)),
            }
        } else if c.is_alphabetic() || c == '_' || c == '$' {
            let start = i;
            while i < b.len() && (b[i].is_alphanumeric() || b[i] == '_' || b[i] == '$') {
                i += 1;
            }
            let word: String = b[start..i].iter().collect();
            if word == "in" && b.get(i) == Some(&'~') {
                i += 1;
                out.push(Tok::Sym("in~"));
            } else {
                out.push(Tok::Ident(word));
            }
        } else {
            let rest: String = b[i..b.len().min(i + 2)].iter().collect();
            let sym = SYMS
                .iter()
                .find(|s| rest.starts_with(**s))
                .ok_or_else(|| KqlError::Syntax(format!("unexpected character {c:?}")))?;
            i += sym.chars().count();
            out.push(Tok::Sym(sym));
        }
    }
    Ok(out)
}

#[derive(Debug, Clone)]
pub(super) enum Expr {
    Lit(Value),
    Col(String),
    Member(Box<Expr>, Box<Expr>),
    Call(String, Vec<Expr>),
    Bin(&'static str, Box<Expr>, Box<Expr>),
    In(Box<Expr>, Vec<Expr>),
}

#[derive(Debug, Clone)]
pub(super) enum Source {
    Table(String),
    Union(Vec<Query>),
}

#[derive(Debug, Clone)]
pub(super) enum Op {
    Where(Expr),
    Extend(Vec<(String, Expr)>),
    Project(Vec<(String, Expr)>),
    ArgMax {
        by_time: String,
        take: Vec<String>,
        keys: Vec<String>,
    },
}

#[derive(Debug, Clone)]
pub(super) struct Query {
    pub(super) source: Source,
    pub(super) ops: Vec<Op>,
}

struct Parser {
    toks: Vec<Tok>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn is_sym(&self, s: &str) -> bool {
        matches!(self.peek(), Some(Tok::Sym(x)) if *x == s)
    }

    fn is_word(&self, w: &str) -> bool {
        matches!(self.peek(), Some(Tok::Ident(x)) if x == w)
    }

    fn expect_sym(&mut self, s: &str) -> Result<(), KqlError> {
        if self.is_sym(s) {
            self.at += 1;
            Ok(())
        } else {
            Err(KqlError::Syntax(format!(
                "expected '{s}', found {:?}",
                self.peek()
            )))
        }
    }

    fn ident(&mut self) -> Result<String, KqlError> {
        match self.next() {
            Some(Tok::Ident(s)) => Ok(s),
            t => Err(KqlError::Syntax(format!("expected a name, found {t:?}"))),
        }
    }

    fn query(&mut self) -> Result<Query, KqlError> {
        let source = if self.is_word("union") {
            self.at += 1;
            let mut parts = Vec::new();
            loop {
                self.expect_sym("(")?;
                parts.push(self.query()?);
                self.expect_sym(")")?;
                if self.is_sym(",") {
                    self.at += 1;
                } else {
                    break;
                }
            }
            Source::Union(parts)
        } else {
            Source::Table(self.ident()?)
        };
        let mut ops = Vec::new();
        while self.is_sym("|") {
            self.at += 1;
            ops.push(self.op()?);
        }
        Ok(Query { source, ops })
    }

    fn op(&mut self) -> Result<Op, KqlError> {
        let word = self.ident()?;
        match word.as_str() {
            "where" => Ok(Op::Where(self.expr()?)),
            "extend" => Ok(Op::Extend(self.assignments(false)?)),
            "project" => Ok(Op::Project(self.assignments(true)?)),
            "summarize" => {
                let f = self.ident()?;
                if f != "arg_max" {
                    return Err(KqlError::Syntax(format!(
                        "aggregation {f} is not supported here"
                    )));
                }
                self.expect_sym("(")?;
                let by_time = self.ident()?;
                let mut take = Vec::new();
                while self.is_sym(",") {
                    self.at += 1;
                    take.push(self.ident()?);
                }
                self.expect_sym(")")?;
                if !self.is_word("by") {
                    return Err(KqlError::Syntax("expected 'by'".into()));
                }
                self.at += 1;
                let mut keys = vec![self.ident()?];
                while self.is_sym(",") {
                    self.at += 1;
                    keys.push(self.ident()?);
                }
                Ok(Op::ArgMax {
                    by_time,
                    take,
                    keys,
                })
            }
            other => Err(KqlError::Syntax(format!(
                "operator '{other}' is not supported here"
            ))),
        }
    }

    fn assignments(&mut self, bare: bool) -> Result<Vec<(String, Expr)>, KqlError> {
        let mut out = Vec::new();
        loop {
            let name = self.ident()?;
            if self.is_sym("=") {
                self.at += 1;
                out.push((name, self.expr()?));
            } else if bare {
                out.push((name.clone(), Expr::Col(name)));
            } else {
                return Err(KqlError::Syntax(format!("expected '=' after {name}")));
            }
            if self.is_sym(",") {
                self.at += 1;
            } else {
                return Ok(out);
            }
        }
    }

    fn expr(&mut self) -> Result<Expr, KqlError> {
        let mut left = self.comparison()?;
        while self.is_word("and") {
            self.at += 1;
            let right = self.comparison()?;
            left = Expr::Bin("and", Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn comparison(&mut self) -> Result<Expr, KqlError> {
        let left = self.division()?;
        for op in ["==", "=~", "!=", ">", "<", ">=", "<="] {
            if self.is_sym(op) {
                self.at += 1;
                let right = self.division()?;
                let op = ["==", "=~", "!=", ">", "<", ">=", "<="]
                    .into_iter()
                    .find(|o| *o == op)
                    .expect("listed");
                return Ok(Expr::Bin(op, Box::new(left), Box::new(right)));
            }
        }
        if self.is_word("startswith") {
            self.at += 1;
            let right = self.division()?;
            return Ok(Expr::Bin("startswith", Box::new(left), Box::new(right)));
        }
        if self.is_sym("in~") {
            self.at += 1;
            self.expect_sym("(")?;
            let mut items = vec![self.division()?];
            while self.is_sym(",") {
                self.at += 1;
                items.push(self.division()?);
            }
            self.expect_sym(")")?;
            return Ok(Expr::In(Box::new(left), items));
        }
        Ok(left)
    }

    fn division(&mut self) -> Result<Expr, KqlError> {
        let mut left = self.postfix()?;
        while self.is_sym("/") {
            self.at += 1;
            let right = self.postfix()?;
            left = Expr::Bin("/", Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn postfix(&mut self) -> Result<Expr, KqlError> {
        let mut e = self.primary()?;
        loop {
            if self.is_sym(".") {
                self.at += 1;
                let key = self.ident()?;
                e = Expr::Member(Box::new(e), Box::new(Expr::Lit(json!(key))));
            } else if self.is_sym("[") {
                self.at += 1;
                let key = self.expr()?;
                self.expect_sym("]")?;
                e = Expr::Member(Box::new(e), Box::new(key));
            } else {
                return Ok(e);
            }
        }
    }

    fn primary(&mut self) -> Result<Expr, KqlError> {
        match self.next() {
            Some(Tok::Str(s)) => Ok(Expr::Lit(json!(s))),
            Some(Tok::Num(n)) => Ok(Expr::Lit(json!(n))),
            Some(Tok::Sym("(")) => {
                let e = self.expr()?;
                self.expect_sym(")")?;
                Ok(e)
            }
            Some(Tok::Ident(name)) if self.is_sym("(") => {
                self.at += 1;
                let mut args = Vec::new();
                if !self.is_sym(")") {
                    loop {
                        // a timespan literal (2d) is an argument of ago()
                        if let Some(Tok::Ident(w)) = self.peek()
                            && w.starts_with(|c: char| c.is_ascii_digit())
                        {
                            args.push(Expr::Lit(json!(w.clone())));
                            self.at += 1;
                        } else {
                            args.push(self.expr()?);
                        }
                        if self.is_sym(",") {
                            self.at += 1;
                        } else {
                            break;
                        }
                    }
                }
                self.expect_sym(")")?;
                Ok(Expr::Call(name, args))
            }
            Some(Tok::Ident(name)) => Ok(Expr::Col(name)),
            t => Err(KqlError::Syntax(format!("unexpected {t:?}"))),
        }
    }
}

/// Parses a whole query.
pub(super) fn parse(query: &str) -> Result<Query, KqlError> {
    let mut p = Parser {
        toks: lex(query)?,
        at: 0,
    };
    let q = p.query()?;
    if p.at != p.toks.len() {
        return Err(KqlError::Syntax(format!("unexpected {:?}", p.peek())));
    }
    Ok(q)
}
