//! Tests of condition compilation and evaluation. The first group re-plays every distinct
//! condition and context of the conformance suite's `abac` tests (`pass`, `expect_error`,
//! `multistage`), with the outcome the suite implies.

use super::*;
use serde_json::json;

/// A condition definition; built through serde so that the AST is named in one place only.
fn def(name: &str, params: &[(&str, ParamType)], expression: &str) -> ConditionDef {
    let params: Vec<Json> = params
        .iter()
        .map(|(n, t)| json!({"name": n, "param_type": t}))
        .collect();
    serde_json::from_value(json!({
        "name": name,
        "params": params,
        "expression": expression,
        "span": {"line": 0, "column": 0, "end_column": 0},
    }))
    .unwrap()
}

fn obj(v: Json) -> Map<String, Json> {
    match v {
        Json::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

fn compile(params: &[(&str, ParamType)], expression: &str) -> CompiledCondition {
    CompiledCondition::compile(&def("cond", params, expression))
        .unwrap_or_else(|e| panic!("{expression}: {e}"))
}

fn compile_err(params: &[(&str, ParamType)], expression: &str) -> String {
    match CompiledCondition::compile(&def("cond", params, expression)) {
        Ok(_) => panic!("{expression} compiled"),
        Err(e) => {
            assert!(matches!(e, ConditionError::Compile { .. }), "{e:?}");
            assert_eq!(e.condition(), "cond");
            e.to_string()
        }
    }
}

/// Evaluates with the request context `request` and no tuple context.
fn eval(c: &CompiledCondition, request: Json) -> Result<ConditionOutcome, ConditionError> {
    c.evaluate(None, &obj(request))
}

fn met(c: &CompiledCondition, request: Json) -> bool {
    match eval(c, request.clone()) {
        Ok(ConditionOutcome::Met) => true,
        Ok(ConditionOutcome::NotMet) => false,
        other => panic!("{request}: {other:?}"),
    }
}

fn missing(names: &[&str]) -> Result<ConditionOutcome, ConditionError> {
    Ok(ConditionOutcome::Missing(
        names.iter().map(|n| (*n).to_owned()).collect(),
    ))
}

fn invalid_param(result: Result<ConditionOutcome, ConditionError>, param: &str) -> String {
    match result {
        Err(e @ ConditionError::InvalidParameter { .. }) => {
            let ConditionError::InvalidParameter { parameter, .. } = &e else {
                unreachable!()
            };
            assert_eq!(parameter, param);
            let message = e.to_string();
            assert!(
                message.contains("'cond'") && message.contains(param),
                "{message}"
            );
            message
        }
        other => panic!("expected an invalid '{param}', got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// The conformance suite's conditions (conformance/openfga/abac).

#[test]
fn conformance_x_less_than() {
    // abac#0, abac#6
    let c = CompiledCondition::compile(&def("x_less_than", &[("x", ParamType::Int)], "x < 100"))
        .unwrap();
    assert_eq!(c.name(), "x_less_than");
    assert!(met(&c, json!({"x": 10})));
    assert!(!met(&c, json!({"x": 101})));
    assert!(met(&c, json!({"x": 99})));
    // expect_error: no context at all.
    assert_eq!(eval(&c, json!({})), missing(&["x"]));
}

#[test]
fn conformance_ts_less_than() {
    // abac#2, abac#20, abac#22
    let c = compile(
        &[("ts", ParamType::Timestamp)],
        r#"ts < timestamp("2023-10-11T10:00:00.000Z")"#,
    );
    assert!(met(&c, json!({"ts": "2023-10-11T09:00:00.000Z"})));
    assert!(!met(&c, json!({"ts": "2023-10-11T10:00:00.000Z"})));
    assert!(!met(&c, json!({"ts": "2023-10-11T11:00:00.000Z"})));
    assert_eq!(eval(&c, json!({})), missing(&["ts"]));
    // abac#20 sends a malformed timestamp (the check still passes through an unconditioned path).
    invalid_param(eval(&c, json!({"ts": "2023-10-11T11:00.000Z"})), "ts");
}

#[test]
fn conformance_ipaddr_in_range() {
    // abac#4: the tuple holds the CIDR, the request the address.
    let c = compile(
        &[
            ("user_ip", ParamType::IpAddress),
            ("cidr", ParamType::String),
        ],
        "user_ip.in_cidr(cidr)",
    );
    let tuple = obj(json!({"cidr": "192.168.0.0/24"}));
    let eval_with = |request: Json| c.evaluate(Some(&tuple), &obj(request));
    assert_eq!(
        eval_with(json!({"user_ip": "192.168.0.1"})),
        Ok(ConditionOutcome::Met)
    );
    assert_eq!(
        eval_with(json!({"user_ip": "192.168.1.0"})),
        Ok(ConditionOutcome::NotMet)
    );
    assert_eq!(eval_with(json!({})), missing(&["user_ip"]));
}

#[test]
fn conformance_xcond() {
    // abac#8, #10, #12, #14
    let c = compile(&[("x", ParamType::Int)], "x == 10");
    assert!(met(&c, json!({"x": 10})));
    assert!(!met(&c, json!({"x": 20})));
    assert!(!met(&c, json!({"x": 99})));
    assert_eq!(eval(&c, json!({})), missing(&["x"]));
}

#[test]
fn conformance_condxy() {
    // abac#16
    let c = compile(
        &[("x", ParamType::Int), ("y", ParamType::Int)],
        "x < 100 || y < 50",
    );
    assert!(met(&c, json!({"x": 10, "y": 5})));
    assert!(!met(&c, json!({"x": 101, "y": 51})));
    assert!(met(&c, json!({"x": 1, "y": 1})));
    assert!(!met(&c, json!({"x": 50000, "y": 50000})));
    assert!(met(&c, json!({"x": 1, "y": 50000})));
    assert!(met(&c, json!({"x": 50000, "y": 1})));
    assert_eq!(eval(&c, json!({})), missing(&["x", "y"]));
    // check[3]: `x < 100` alone decides the value, yet OpenFGA fails with missing parameters.
    assert_eq!(eval(&c, json!({"x": 10})), missing(&["y"]));
    assert_eq!(eval(&c, json!({"y": 10})), missing(&["x"]));
}

#[test]
fn conformance_condfloat() {
    // abac#18
    let c = compile(&[("x", ParamType::Double)], "x > 0.0");
    assert!(met(&c, json!({"x": 1.797_693_134_862_315_7})));
    assert!(!met(&c, json!({"x": -1.797_693_134_862_315_7})));
    for out_of_range in [
        "1.79769313486231570814527423731704356798070e+309",
        "-1.79769313486231570814527423731704356798070e+309",
    ] {
        invalid_param(eval(&c, json!({ "x": out_of_range })), "x");
    }
    // The suite's unquoted 1.8e309 is no JSON number serde_json holds: parsing it fails, and a
    // float that is not finite becomes `null` in a `serde_json::Value`, which is no double.
    assert!(
        serde_json::from_str::<Json>("1.79769313486231570814527423731704356798070e+309").is_err()
    );
    assert_eq!(Json::from(f64::INFINITY), Json::Null);
    invalid_param(eval(&c, json!({ "x": null })), "x");
}

// ---------------------------------------------------------------------------------------------
// Merging the contexts, missing parameters.

#[test]
fn the_tuple_context_wins_over_the_request_context() {
    let c = compile(&[("x", ParamType::Int)], "x < 100");
    let tuple = obj(json!({"x": 1}));
    assert_eq!(
        c.evaluate(Some(&tuple), &obj(json!({"x": 200}))),
        Ok(ConditionOutcome::Met)
    );
    let tuple = obj(json!({"x": 200}));
    assert_eq!(
        c.evaluate(Some(&tuple), &obj(json!({"x": 1}))),
        Ok(ConditionOutcome::NotMet)
    );
    // A key only the request has is taken from it; an empty tuple context changes nothing.
    assert_eq!(
        c.evaluate(Some(&Map::new()), &obj(json!({"x": 1}))),
        Ok(ConditionOutcome::Met)
    );
    // The tuple's value is taken even when the request's would not convert.
    let tuple = obj(json!({"x": 1}));
    assert_eq!(
        c.evaluate(Some(&tuple), &obj(json!({"x": "not a number"}))),
        Ok(ConditionOutcome::Met)
    );
}

#[test]
fn undeclared_keys_are_ignored_at_evaluation() {
    let c = compile(&[("x", ParamType::Int)], "x < 100");
    let tuple = obj(json!({"other": "anything"}));
    assert_eq!(
        c.evaluate(Some(&tuple), &obj(json!({"x": 1, "y": [1, 2]}))),
        Ok(ConditionOutcome::Met)
    );
}

#[test]
fn missing_parameters_are_listed_in_declaration_order() {
    let c = compile(
        &[
            ("b", ParamType::Int),
            ("a", ParamType::Int),
            ("c", ParamType::Int),
        ],
        "a < b || c == 1",
    );
    assert_eq!(eval(&c, json!({"a": 1})), missing(&["b", "c"]));
    // Even a declared parameter the expression does not reference is required, as in OpenFGA.
    let c = compile(
        &[("x", ParamType::Int), ("unused", ParamType::Int)],
        "x < 100",
    );
    assert_eq!(eval(&c, json!({"x": 1})), missing(&["unused"]));
    // Even when the value does not depend on the missing one.
    let c = compile(&[("x", ParamType::Int)], "x < 100 || true");
    assert_eq!(eval(&c, json!({})), missing(&["x"]));
}

#[test]
fn a_bad_value_is_reported_before_missing_ones() {
    let c = compile(&[("x", ParamType::Int), ("y", ParamType::Int)], "x < y");
    invalid_param(eval(&c, json!({"x": "nope"})), "x");
}

#[test]
fn context_for_a_condition_without_parameters_is_refused() {
    let c = compile(&[], "true");
    assert_eq!(eval(&c, json!({})), Ok(ConditionOutcome::Met));
    let err = eval(&c, json!({"a": 1})).unwrap_err();
    assert!(
        matches!(err, ConditionError::NoParameters { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("no parameters defined"));
    let tuple = obj(json!({"a": 1}));
    assert!(c.evaluate(Some(&tuple), &Map::new()).is_err());
}

// ---------------------------------------------------------------------------------------------
// Parameter types: conversion of good and bad values.

#[test]
fn int_parameters() {
    let c = compile(
        &[("x", ParamType::Int)],
        "x == 1000 || x < 0 || x == 9223372036854775807",
    );
    assert!(met(&c, json!({"x": 1000})));
    assert!(met(&c, json!({"x": "1000"})));
    assert!(met(&c, json!({"x": 1000.0})));
    assert!(met(&c, json!({"x": "1e3"})));
    assert!(met(&c, json!({"x": "-5"})));
    assert!(met(&c, json!({"x": i64::MAX})));
    assert!(!met(&c, json!({"x": 7})));
    for bad in [
        json!(10.5),
        json!("3.5"),
        json!("abc"),
        json!(""),
        json!(true),
        json!(null),
        json!([1]),
        json!(1e20),
        json!(u64::MAX),
        json!("Inf"),
    ] {
        invalid_param(eval(&c, json!({ "x": bad })), "x");
    }
}

#[test]
fn uint_parameters() {
    let c = compile(
        &[("x", ParamType::Uint)],
        "x == 7u || x == 18446744073709551615u",
    );
    assert!(met(&c, json!({"x": 7})));
    assert!(met(&c, json!({"x": "7"})));
    assert!(met(&c, json!({"x": 7.0})));
    assert!(met(&c, json!({"x": u64::MAX})));
    for bad in [json!(-1), json!("-1"), json!(1.5), json!("x"), json!(false)] {
        invalid_param(eval(&c, json!({ "x": bad })), "x");
    }
}

#[test]
fn double_parameters() {
    let c = compile(&[("x", ParamType::Double)], "x == 2.25 || x == 10.0");
    assert!(met(&c, json!({"x": 2.25})));
    assert!(met(&c, json!({"x": 10})));
    assert!(met(&c, json!({"x": "2.25"})));
    assert!(met(&c, json!({"x": "1e1"})));
    assert!(!met(&c, json!({"x": 3})));
    for bad in [
        json!("abc"),
        json!(true),
        json!("1e309"),
        json!("NaN"),
        json!("inf"),
        json!("infinity"),
        json!(null),
    ] {
        invalid_param(eval(&c, json!({ "x": bad })), "x");
    }
}

#[test]
fn bool_and_string_parameters() {
    let c = compile(
        &[("b", ParamType::Bool), ("s", ParamType::String)],
        r#"b && s == "ok""#,
    );
    assert!(met(&c, json!({"b": true, "s": "ok"})));
    assert!(!met(&c, json!({"b": false, "s": "ok"})));
    invalid_param(eval(&c, json!({"b": "true", "s": "ok"})), "b");
    invalid_param(eval(&c, json!({"b": 1, "s": "ok"})), "b");
    invalid_param(eval(&c, json!({"b": true, "s": 1})), "s");
    invalid_param(eval(&c, json!({"b": true, "s": null})), "s");
}

#[test]
fn duration_parameters() {
    let c = compile(
        &[("d", ParamType::Duration), ("e", ParamType::Duration)],
        "d == e",
    );
    let same = |d: &str, e: &str| met(&c, json!({"d": d, "e": e}));
    assert!(same("1h30m", "90m"));
    assert!(same("1.5h", "5400s"));
    assert!(same("300ms", "0.3s"));
    assert!(same("10s", "10000ms"));
    assert!(same("-2µs", "-2000ns"));
    assert!(same("2μs", "2us"));
    assert!(same("0", "0s"));
    assert!(same(".5s", "500ms"));
    assert!(same("1.s", "1s"));
    assert!(same("+1h", "60m"));
    assert!(same("2562047h47m16.854775807s", "9223372036854775807ns"));
    assert!(!same("1h", "61m"));
    for bad in [
        json!("1d"),
        json!(""),
        json!("10"),
        json!("1h 30m"),
        json!("."),
        json!("-"),
        json!("h"),
        json!("9223372036854775808ns"),
        json!("2562048h"),
        json!(10),
        json!(null),
    ] {
        invalid_param(eval(&c, json!({ "d": bad, "e": "1s" })), "d");
    }
    // Typed durations work with CEL's duration functions and operators.
    let c = compile(
        &[("d", ParamType::Duration)],
        r#"d > duration("1h") && d < duration("2h") && d.getMinutes() == 90"#,
    );
    assert!(met(&c, json!({"d": "1h30m"})));
    assert!(!met(&c, json!({"d": "30m"})));
    // cel-go's conversions between durations and nanoseconds.
    let c = compile(
        &[("d", ParamType::Duration)],
        "int(d) == 1500000000 && duration(1500000000) == d",
    );
    assert!(met(&c, json!({"d": "1.5s"})));
    compile_err(
        &[("l", ParamType::List(Box::new(ParamType::Int)))],
        "l[0u] == 1",
    );
}

#[test]
fn timestamp_parameters() {
    let c = compile(
        &[("t", ParamType::Timestamp)],
        r#"t == timestamp("2023-01-02T15:04:05Z")"#,
    );
    assert!(met(&c, json!({"t": "2023-01-02T15:04:05Z"})));
    assert!(met(&c, json!({"t": "2023-01-02T17:04:05+02:00"})));
    assert!(met(&c, json!({"t": "2023-01-02T15:04:05.000Z"})));
    assert!(!met(&c, json!({"t": "2023-01-02T15:04:05.5Z"})));
    for bad in [
        json!("2023-01-02"),
        json!("not-a-timestamp"),
        json!("2023-01-02 15:04:05Z"),
        json!("2023-01-02t15:04:05z"),
        json!("2023-01-02T15:04:05"),
        json!(42),
        json!(null),
    ] {
        invalid_param(eval(&c, json!({ "t": bad })), "t");
    }
    // Arithmetic with durations, and the accessors in UTC as cel-go's.
    let c = compile(
        &[
            ("t", ParamType::Timestamp),
            ("now", ParamType::Timestamp),
            ("ttl", ParamType::Duration),
        ],
        "t + ttl > now && now - t < duration(\"1h\") && t.getHours() == 8",
    );
    assert!(met(
        &c,
        json!({"t": "2023-10-11T10:00:00+02:00", "now": "2023-10-11T08:10:00Z", "ttl": "15m"})
    ));
    assert!(!met(
        &c,
        json!({"t": "2023-10-11T10:00:00+02:00", "now": "2023-10-11T08:20:00Z", "ttl": "15m"})
    ));
}

#[test]
fn ipaddress_parameters() {
    let c = compile(
        &[("ip", ParamType::IpAddress)],
        r#"ip.in_cidr("10.0.0.0/8") || ip.in_cidr("2001:db8::/32")"#,
    );
    assert!(met(&c, json!({"ip": "10.1.2.3"})));
    assert!(!met(&c, json!({"ip": "11.0.0.1"})));
    assert!(met(&c, json!({"ip": "2001:db8::1"})));
    assert!(!met(&c, json!({"ip": "2001:db9::1"})));
    // An IPv4-mapped IPv6 address is IPv6, and an address with a zone matches no prefix.
    assert!(!met(&c, json!({"ip": "::ffff:10.0.0.1"})));
    assert!(!met(&c, json!({"ip": "2001:db8::1%eth0"})));
    for bad in [
        json!("999.999.999.999"),
        json!("010.0.0.1"),
        json!("10.0.0"),
        json!("10.0.0.1/8"),
        json!("fe80::1%"),
        json!(""),
        json!(42),
    ] {
        invalid_param(eval(&c, json!({ "ip": bad })), "ip");
    }
}

#[test]
fn in_cidr() {
    let c = compile(
        &[("ip", ParamType::IpAddress), ("cidr", ParamType::String)],
        "ip.in_cidr(cidr)",
    );
    let in_cidr = |ip: &str, cidr: &str| eval(&c, json!({"ip": ip, "cidr": cidr}));
    let yes = Ok(ConditionOutcome::Met);
    let no = Ok(ConditionOutcome::NotMet);
    assert_eq!(in_cidr("192.168.0.1", "192.168.0.0/24"), yes);
    assert_eq!(in_cidr("192.168.1.0", "192.168.0.0/24"), no);
    assert_eq!(in_cidr("192.168.0.1", "192.168.0.1/32"), yes);
    assert_eq!(in_cidr("192.168.0.2", "192.168.0.1/32"), no);
    assert_eq!(in_cidr("8.8.8.8", "0.0.0.0/0"), yes);
    // The prefix's address need not be masked.
    assert_eq!(in_cidr("10.200.0.1", "10.1.2.3/8"), yes);
    assert_eq!(in_cidr("::1", "::/0"), yes);
    assert_eq!(in_cidr("10.0.0.1", "::/0"), no);
    assert_eq!(in_cidr("::1", "0.0.0.0/0"), no);
    for malformed in [
        "10.0.0.0",
        "10.0.0.0/33",
        "10.0.0.0/-1",
        "10.0.0.0/08",
        "10.0.0.0/",
        "::/129",
        "fe80::%eth0/64",
        "nonsense",
    ] {
        match in_cidr("10.0.0.1", malformed) {
            Err(ConditionError::Evaluation { message, .. }) => {
                assert!(message.contains("malformed CIDR"), "{malformed}: {message}");
            }
            other => panic!("{malformed}: {other:?}"),
        }
    }
    // The `ipaddress` function, and equality of addresses.
    let c = compile(
        &[("ip", ParamType::IpAddress)],
        r#"ip == ipaddress("10.0.0.1") && ipaddress("192.168.0.9").in_cidr("192.168.0.0/16")"#,
    );
    assert!(met(&c, json!({"ip": "10.0.0.1"})));
    assert!(!met(&c, json!({"ip": "10.0.0.2"})));
    let c = compile(
        &[("s", ParamType::String)],
        "ipaddress(s).in_cidr(\"10.0.0.0/8\")",
    );
    assert!(matches!(
        eval(&c, json!({"s": "not an ip"})),
        Err(ConditionError::Evaluation { .. })
    ));
    compile_err(&[], r#"ipaddress(true).in_cidr("192.168.0.0/24")"#);
}

#[test]
fn list_and_map_parameters() {
    let c = compile(
        &[
            ("l", ParamType::List(Box::new(ParamType::Int))),
            ("m", ParamType::Map(Box::new(ParamType::String))),
        ],
        r#"2 in l && m.color == "red" && m["size"] == "L" && "color" in m && size(l) == 3"#,
    );
    assert!(met(
        &c,
        json!({"l": [1, "2", 3.0], "m": {"color": "red", "size": "L"}})
    ));
    assert!(!met(
        &c,
        json!({"l": [1, 3, 4], "m": {"color": "red", "size": "L"}})
    ));
    let message = invalid_param(eval(&c, json!({"l": [1, "a"], "m": {}})), "l");
    assert!(message.contains("index `1`"), "{message}");
    let message = invalid_param(eval(&c, json!({"l": [], "m": {"k": 1}})), "m");
    assert!(message.contains("key `k`"), "{message}");
    invalid_param(eval(&c, json!({"l": "1,2", "m": {}})), "l");
    invalid_param(eval(&c, json!({"l": [], "m": ["a"]})), "m");
    // Nested, and typed elements.
    let c = compile(
        &[(
            "windows",
            ParamType::List(Box::new(ParamType::Map(Box::new(ParamType::Timestamp)))),
        )],
        r#"windows.exists(w, w.start < timestamp("2024-01-01T00:00:00Z"))"#,
    );
    assert!(met(
        &c,
        json!({"windows": [{"start": "2025-01-01T00:00:00Z"}, {"start": "2023-01-01T00:00:00Z"}]})
    ));
    invalid_param(eval(&c, json!({"windows": [{"start": "soon"}]})), "windows");
}

#[test]
fn any_parameters() {
    let c = compile(
        &[("a", ParamType::Any)],
        r#"a.user.age >= 18 && a.user.name == "anne" && a.tags.exists(t, t == "x") && a.n == null"#,
    );
    assert!(met(
        &c,
        json!({"a": {"user": {"age": 20, "name": "anne"}, "tags": ["y", "x"], "n": null}})
    ));
    assert!(!met(
        &c,
        json!({"a": {"user": {"age": 17, "name": "anne"}, "tags": ["x"], "n": null}})
    ));
    // Numbers are doubles, as in OpenFGA; CEL compares them with ints by value.
    let c = compile(&[("a", ParamType::Any)], "a == 10 && type(a) == double");
    assert!(met(&c, json!({"a": 10})));
    // A bare `any` can be a bool, or not.
    let c = compile(&[("a", ParamType::Any)], "a");
    assert!(met(&c, json!({"a": true})));
    assert!(matches!(
        eval(&c, json!({"a": 1})),
        Err(ConditionError::NonBool { .. })
    ));
}

// ---------------------------------------------------------------------------------------------
// Compilation checks.

#[test]
fn parse_errors() {
    let message = compile_err(&[("x", ParamType::Int)], "x <");
    assert!(message.contains("'cond'"), "{message}");
    compile_err(&[("x", ParamType::Int)], "");
    compile_err(&[("x", ParamType::Int)], "x < 100 }");
    // Optional syntax is not enabled in OpenFGA's cel-go environment.
    compile_err(
        &[("m", ParamType::Map(Box::new(ParamType::Int)))],
        "m.?a == 1",
    );
}

#[test]
fn undeclared_identifiers_and_functions() {
    let message = compile_err(&[("x", ParamType::Int)], "z < 100");
    assert!(message.contains("undeclared reference to 'z'"), "{message}");
    compile_err(&[("x", ParamType::Int)], "foo(x)");
    compile_err(&[("s", ParamType::String)], "s.lowerAscii() == \"a\"");
    compile_err(&[("x", ParamType::Int)], "optional.of(x).hasValue()");
    // A comprehension variable is only in scope in its comprehension.
    let l = || ("l", ParamType::List(Box::new(ParamType::Int)));
    compile(&[l()], "l.all(e, e > 0)");
    compile(&[l()], "l.exists(e, l.all(f, e <= f || e > f))");
    compile_err(&[l()], "l.all(e, e > 0) && e > 0");
    compile_err(&[l()], "l.all(e, f > 0)");
    compile_err(&[("x", ParamType::Int)], "Foo{a: 1} == x");
    compile_err(&[("x", ParamType::Int), ("x", ParamType::Int)], "x > 0");
}

#[test]
fn type_errors() {
    let int = || ("x", ParamType::Int);
    let message = compile_err(&[int()], "x == \"a\"");
    assert!(
        message.contains("found no matching overload for '_==_' applied to '(int, string)'"),
        "{message}"
    );
    // cel-go's `==` takes two values of one type; `<` compares numbers across types.
    compile_err(&[("x", ParamType::Double)], "x == 10");
    compile(&[("x", ParamType::Double)], "x < 10");
    compile(&[("x", ParamType::Uint)], "x < 10");
    compile_err(&[int()], "x + 1.5 > 2.0");
    compile_err(&[int()], "x && true");
    compile_err(&[int()], "x.startsWith(\"1\")");
    compile_err(&[int()], "x.a == 1");
    compile_err(&[int()], "x.all(e, e > 0)");
    compile_err(
        &[("l", ParamType::List(Box::new(ParamType::Int)))],
        "l.all(e, e)",
    );
    compile_err(
        &[("t", ParamType::Timestamp)],
        "t < timestamp(\"2023-01-01T00:00:00Z\") + 1",
    );
    compile(
        &[int()],
        "string(x) == \"1\" && double(x) > 0.5 && x % 2 == 1",
    );
    compile(
        &[("s", ParamType::String)],
        "s.matches(\"^a\") && size(s) == 2 && s.size() == 2",
    );
    compile(
        &[("m", ParamType::Map(Box::new(ParamType::Int)))],
        "has(m.a) && m.all(k, m[k] > 0) && m.map(k, m[k] * 2).all(v, v > 0)",
    );
}

#[test]
fn non_bool_results_are_refused_at_compile_time() {
    for (ty, expr) in [
        (ParamType::Int, "x"),
        (ParamType::Int, "x + 1"),
        (ParamType::String, "x"),
        (ParamType::Int, "[x]"),
        (ParamType::Int, "x > 0 ? 1 : 2"),
        (ParamType::List(Box::new(ParamType::Int)), "x.map(e, e > 0)"),
        (ParamType::Timestamp, "x"),
    ] {
        let message = compile_err(&[("x", ty)], expr);
        assert!(
            message.contains("expected a bool condition expression output"),
            "{expr}: {message}"
        );
    }
    // What cannot be known at compile time is found at evaluation.
    let c = compile(&[("m", ParamType::Map(Box::new(ParamType::Any)))], "m.flag");
    assert!(met(&c, json!({"m": {"flag": true}})));
    let err = eval(&c, json!({"m": {"flag": "yes"}})).unwrap_err();
    assert!(matches!(err, ConditionError::NonBool { .. }));
    assert!(err.to_string().contains("'cond'"), "{err}");
}

#[test]
fn runtime_errors() {
    let c = compile(&[("x", ParamType::Int)], "100 / x == 1");
    assert!(met(&c, json!({"x": 100})));
    let err = eval(&c, json!({"x": 0})).unwrap_err();
    assert!(matches!(err, ConditionError::Evaluation { .. }), "{err:?}");
    assert!(err.to_string().contains("'cond'"), "{err}");

    let c = compile(
        &[("m", ParamType::Map(Box::new(ParamType::Int)))],
        "m.a == 1",
    );
    assert!(matches!(
        eval(&c, json!({"m": {"b": 1}})),
        Err(ConditionError::Evaluation { .. })
    ));
    let c = compile(
        &[("l", ParamType::List(Box::new(ParamType::Int)))],
        "l[5] == 1",
    );
    assert!(matches!(
        eval(&c, json!({"l": [1]})),
        Err(ConditionError::Evaluation { .. })
    ));
    // No such overload, found at runtime on an `any` value (a number is a double, and
    // `double + int` has no overload in CEL).
    let c = compile(&[("a", ParamType::Any)], "a + 1 == 2");
    for a in [json!(1), json!("one")] {
        assert!(matches!(
            eval(&c, json!({ "a": a })),
            Err(ConditionError::Evaluation { .. })
        ));
    }
    let c = compile(&[("a", ParamType::Any)], "a + 1.0 == 2.0");
    assert!(met(&c, json!({"a": 1})));
    let c = compile(&[("x", ParamType::Int)], "x + 1 > 0");
    assert!(matches!(
        eval(&c, json!({"x": i64::MAX})),
        Err(ConditionError::Evaluation { .. })
    ));
    // CEL's `||` and `&&` absorb an error when the other side decides.
    let c = compile(&[("x", ParamType::Int)], "100 / x == 1 || true");
    assert!(met(&c, json!({"x": 0})));
}

// ---------------------------------------------------------------------------------------------
// Cost.

fn list_of(n: usize) -> Json {
    Json::Array((0..n).map(|i| json!(i)).collect())
}

#[test]
fn the_cost_of_simple_expressions_does_not_depend_on_values() {
    let c = compile(&[("x", ParamType::Int)], "x < 100");
    assert_eq!(c.static_cost, Some(2));
    let c = compile(
        &[("x", ParamType::Int), ("y", ParamType::Int)],
        "x < 100 || y < 50",
    );
    assert_eq!(c.static_cost, Some(5));
    let c = compile(&[("s", ParamType::String)], "s.contains(\"a\")");
    assert_eq!(c.static_cost, None);
}

#[test]
fn a_nested_comprehension_over_a_large_list_exceeds_the_cost_limit() {
    let c = compile(
        &[("l", ParamType::List(Box::new(ParamType::Int)))],
        "l.all(a, l.all(b, a != b || a == b))",
    );
    assert_eq!(c.max_cost(), DEFAULT_MAX_COST);
    assert!(met(&c, json!({"l": list_of(2)})));
    match eval(&c, json!({"l": list_of(100)})) {
        Err(e @ ConditionError::CostExceeded { .. }) => {
            let ConditionError::CostExceeded {
                estimate, limit, ..
            } = &e
            else {
                unreachable!()
            };
            assert!(*estimate > 10_000, "{estimate}");
            assert_eq!(*limit, 100);
            assert!(e.to_string().contains("'cond'"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    // A higher limit lets it through.
    let c = c.with_max_cost(10_000_000);
    assert!(met(&c, json!({"l": list_of(100)})));
}

#[test]
fn the_cost_grows_with_the_size_of_the_values() {
    let c = compile(
        &[("l", ParamType::List(Box::new(ParamType::Int)))],
        "l.exists(e, e == 3)",
    );
    assert!(met(&c, json!({"l": list_of(5)})));
    assert!(matches!(
        eval(&c, json!({"l": list_of(1000)})),
        Err(ConditionError::CostExceeded { .. })
    ));
    // A list nested in an `any` value is bounded by the largest collection in the values.
    let c = compile(&[("a", ParamType::Any)], "a.items.all(e, e >= 0)");
    assert!(met(&c, json!({"a": {"items": list_of(5)}})));
    assert!(matches!(
        eval(&c, json!({"a": {"items": list_of(1000)}})),
        Err(ConditionError::CostExceeded { .. })
    ));
    // Long strings cost more.
    let c = compile(&[("s", ParamType::String)], "s.contains(\"needle\")");
    assert!(!met(&c, json!({"s": "short"})));
    assert!(matches!(
        eval(&c, json!({"s": "x".repeat(5_000)})),
        Err(ConditionError::CostExceeded { .. })
    ));
    // `in` scans the list.
    let c = compile(
        &[("l", ParamType::List(Box::new(ParamType::Int)))],
        "3 in l",
    );
    assert!(met(&c, json!({"l": list_of(50)})));
    assert!(matches!(
        eval(&c, json!({"l": list_of(500)})),
        Err(ConditionError::CostExceeded { .. })
    ));
    // A zero limit refuses everything but constants.
    let c = compile(&[("x", ParamType::Int)], "x < 1").with_max_cost(0);
    assert!(matches!(
        eval(&c, json!({"x": 0})),
        Err(ConditionError::CostExceeded { .. })
    ));
}

// ---------------------------------------------------------------------------------------------
// Tuple-write validation.

#[test]
fn validating_tuple_params() {
    let d = def(
        "cond",
        &[("x", ParamType::Int), ("ip", ParamType::IpAddress)],
        "x < 1 && ip.in_cidr(\"10.0.0.0/8\")",
    );
    assert_eq!(validate_tuple_params(&d, &Map::new()), Ok(()));
    assert_eq!(validate_tuple_params(&d, &obj(json!({"x": 1}))), Ok(()));
    assert_eq!(
        validate_tuple_params(&d, &obj(json!({"x": "2", "ip": "10.0.0.1"}))),
        Ok(())
    );
    let err = validate_tuple_params(&d, &obj(json!({"x": 1, "param2": 1}))).unwrap_err();
    assert_eq!(
        err,
        ConditionError::UndeclaredParameter {
            condition: "cond".to_owned(),
            parameter: "param2".to_owned()
        }
    );
    assert!(
        err.to_string()
            .contains("found invalid context parameter: param2")
    );
    let err = validate_tuple_params(&d, &obj(json!({"ip": "10.0.0.256"}))).unwrap_err();
    assert!(
        matches!(&err, ConditionError::InvalidParameter { parameter, .. } if parameter == "ip"),
        "{err:?}"
    );
    let no_params = def("empty", &[], "true");
    assert_eq!(validate_tuple_params(&no_params, &Map::new()), Ok(()));
    assert_eq!(
        validate_tuple_params(&no_params, &obj(json!({"a": 1}))),
        Err(ConditionError::NoParameters {
            condition: "empty".to_owned()
        })
    );
}

#[test]
fn compiled_conditions_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<CompiledCondition>();
    assert_send_sync::<ConditionError>();
}

#[test]
fn the_go_duration_parser() {
    use convert::parse_go_duration as p;
    assert_eq!(p("1h30m"), Some(5_400_000_000_000));
    assert_eq!(p("1.5h"), Some(5_400_000_000_000));
    assert_eq!(p("300ms"), Some(300_000_000));
    assert_eq!(p("-1.5s"), Some(-1_500_000_000));
    assert_eq!(p("1h1m1s1ms1us1ns"), Some(3_661_001_001_001));
    assert_eq!(p("0.000000001s"), Some(1));
    assert_eq!(p("-9223372036854775808ns"), Some(i64::MIN));
    assert_eq!(p("9223372036854775807ns"), Some(i64::MAX));
    assert_eq!(p("9223372036854775808ns"), None);
    assert_eq!(p("1.0000000000000000000000001s"), Some(1_000_000_000));
    for bad in ["", "+", "1", "1x", "s", "1s2", "--1s", ".s", "1e3s"] {
        assert_eq!(p(bad), None, "{bad}");
    }
}

#[test]
fn deep_and_long_expressions_are_refused_at_compile_time() {
    let deep = |kind: &str, n: usize| -> (String, Vec<(&'static str, ParamType)>) {
        match kind {
            "plus" => (
                format!("{} < 1", vec!["x"; n].join(" + ")),
                vec![("x", ParamType::Int)],
            ),
            "parens" => (
                format!("{}x{} < 1", "(".repeat(n), ")".repeat(n)),
                vec![("x", ParamType::Int)],
            ),
            "lists" => (
                format!("{}1{} == x", "[".repeat(n), "]".repeat(n)),
                vec![("x", ParamType::Any)],
            ),
            "ternary" => (
                format!("{}true{}", "x > 0 ? (".repeat(n), ") : false".repeat(n)),
                vec![("x", ParamType::Int)],
            ),
            "selects" => (
                format!("x{} == 1", ".a".repeat(n)),
                vec![("x", ParamType::Any)],
            ),
            "index" => (
                format!("x{} == 1", "[0]".repeat(n)),
                vec![("x", ParamType::Any)],
            ),
            "members" => (
                format!("x{} == 1", ".f()".repeat(n)),
                vec![("x", ParamType::Any)],
            ),
            "equalities" => (
                format!("x == {}", vec!["true"; n].join(" == ")),
                vec![("x", ParamType::Any)],
            ),
            "negations" => (format!("{}1 < 0", "-".repeat(n)), vec![]),
            _ => unreachable!(),
        }
    };
    let kinds = [
        "plus",
        "parens",
        "lists",
        "ternary",
        "selects",
        "index",
        "members",
        "equalities",
    ];
    for kind in kinds {
        // Too deep, or too long: refused, on the caller's (2 MiB test) stack.
        for n in [100, 1000, 15_000] {
            let (expr, params) = deep(kind, n);
            let err = CompiledCondition::compile(&def("cond", &params, &expr)).unwrap_err();
            assert!(matches!(err, ConditionError::Compile { .. }), "{kind} {n}");
        }
        // Just deep enough: compiled, and evaluated on a 2 MiB stack.
        let (expr, params) = deep(kind, 40);
        if kind == "members" {
            // `f` is no function: refused, but only after parsing.
            assert!(compile_err(&params, &expr).contains("undeclared reference to 'f'"));
            continue;
        }
        let c = compile(&params, &expr).with_max_cost(u64::MAX);
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || c.evaluate(None, &obj(json!({"x": 5}))).map(|_| ()))
            .unwrap()
            .join()
            .unwrap()
            .unwrap_or_else(|e| {
                assert!(
                    matches!(e, ConditionError::Evaluation { .. }),
                    "{kind}: {e}"
                )
            });
    }
    // Long runs of unary minus neither crash nor nest (they cancel out in pairs too).
    for n in [1000, 15_000] {
        let (expr, params) = deep("negations", n);
        let _ = CompiledCondition::compile(&def("cond", &params, &expr));
    }
    let long = vec!["x < 1"; 4000].join(" || ");
    assert!(long.len() > MAX_EXPRESSION_LEN);
    compile_err(&[("x", ParamType::Int)], &long);
    // `||` chains are balanced, so a long one is shallow.
    let c = compile(&[("x", ParamType::Int)], &vec!["x == 1"; 1000].join(" || "));
    assert!(met(&c.with_max_cost(u64::MAX), json!({"x": 1})));
    // Negations cancel out in pairs when parsed, as in cel-go.
    let c = compile(&[], &format!("{}true", "!".repeat(1001)));
    assert!(!met(&c, json!({})));
}
