use super::*;

fn state(text: &str) -> State {
    TextNormalizer::builtin().classify_text(text).state
}

fn rule(text: &str) -> String {
    TextNormalizer::builtin().classify_text(text).rule
}

#[test]
fn builtin_rules_compile() {
    let n = TextNormalizer::from_toml(BUILTIN_RULES).unwrap();
    assert!(n.rule_count() > 30);
}

#[test]
fn plain_signature_is_delivered() {
    assert_eq!(
        state("【北京市】您的快件已签收，签收人：本人，如有疑问请电联快递员"),
        State::Delivered
    );
    assert_eq!(state("Delivered, Front Door/Porch"), State::Delivered);
}

#[test]
fn lines_that_only_mention_signing_are_not_deliveries() {
    assert_eq!(
        state("【上海市】快件派送中，请保持电话畅通，准备签收"),
        State::OutForDelivery
    );
    assert_eq!(
        state("您的快件待签收，如有疑问请联系派件员"),
        State::InTransit
    );
    assert_eq!(
        state("快件已到达【上海浦东营业部】，签收人电话：13812345678"),
        State::AtDeliveryOutlet
    );
    assert_eq!(state("请您当面验货后签收"), State::InTransit);
}

#[test]
fn proxy_signing_is_delivered_by_proxy() {
    assert_eq!(state("快件已被 王先生 代签收"), State::DeliveredByProxy);
    assert_eq!(
        state("您的快件已签收，签收人：门卫"),
        State::DeliveredByProxy
    );
    assert_eq!(
        state("DELIVERED, Receiver: FRONT DESK"),
        State::DeliveredByProxy
    );
}

#[test]
fn signing_by_a_station_or_locker_is_delivered_from_locker() {
    assert_eq!(
        state("您的快件已由【幸福小区菜鸟驿站】代收"),
        State::DeliveredFromLocker
    );
    assert_eq!(
        state("已签收，签收人凭取货码签收"),
        State::DeliveredFromLocker
    );
    assert_eq!(
        state("您的包裹已从丰巢快递柜取出，感谢使用"),
        State::DeliveredFromLocker
    );
}

#[test]
fn a_parcel_waiting_in_a_locker_is_in_locker() {
    assert_eq!(
        state("快件已放入【南山花园丰巢柜】，请凭取件码12345678取件"),
        State::InLocker
    );
    assert_eq!(
        state("您的快件已到达【菜鸟驿站】，代收点电话0755-88886666，请及时取件"),
        State::InLocker
    );
    assert_eq!(
        state("Delivered to UPS Access Point™ location and awaiting customer pickup"),
        State::InLocker
    );
}

#[test]
fn refusal_return_and_returned_are_told_apart() {
    assert_eq!(state("收件人拒收，快件将退回寄件人"), State::Refused);
    assert_eq!(state("快件已退回，正在返回寄件人途中"), State::Returning);
    assert_eq!(state("退回件已签收，签收人：寄件人"), State::Returned);
    assert_eq!(state("Return to Sender Processed"), State::Returning);
    assert_eq!(state("Delivered to Original Sender"), State::Returned);
}

#[test]
fn customs_sub_states() {
    assert_eq!(
        state("包裹已到达海关监管仓，待清关"),
        State::CustomsAwaiting
    );
    assert_eq!(state("【上海】清关中"), State::CustomsInProgress);
    assert_eq!(state("已清关，海关放行"), State::CustomsCleared);
    assert_eq!(
        state("清关异常，需补充收件人身份证"),
        State::CustomsException
    );
    assert_eq!(
        state("Shipment is on hold: held by customs"),
        State::CustomsException
    );
}

#[test]
fn a_place_in_brackets_does_not_trigger_a_rule() {
    // Without scrubbing, 退货 and 拦截 in the names would win.
    assert_eq!(state("快件已到达【广州退货仓库】"), State::InTransit);
    assert_eq!(
        state("快件离开【深圳拦截组】，发往【广州】"),
        State::InTransit
    );
}

#[test]
fn a_courier_name_does_not_trigger_a_rule() {
    assert_eq!(state("派件员：王签收 正在为您派件"), State::OutForDelivery);
}

#[test]
fn failed_attempt_with_a_reason_takes_the_reason() {
    assert_eq!(
        state("派送不成功，原因：收件人电话无人接听"),
        State::Unreachable
    );
    assert_eq!(state("派件异常，收件地址有误"), State::AddressProblem);
    assert_eq!(state("派送不成功，收件人不在家"), State::AttemptFailed);
    assert_eq!(state("因收件人不在，明日再次派送"), State::Redelivery);
}

#[test]
fn handed_over_and_redirected() {
    assert_eq!(state("本地区超区，快件已转EMS派送"), State::HandedOver);
    assert_eq!(
        state("收件地址超出派送范围，请联系寄件人"),
        State::OutOfArea
    );
    assert_eq!(
        state("快件已转投中国邮政，邮件号：1234567890"),
        State::HandedOver
    );
    assert_eq!(state("应寄件人要求转寄至新地址"), State::Redirected);
}

#[test]
fn unknown_text_falls_back_to_in_transit() {
    assert_eq!(rule("？？？"), "fallback.in_transit");
    assert_eq!(state(""), State::InTransit);
}

#[test]
fn the_deciding_rule_is_reported() {
    assert_eq!(rule("快件已被 张三 代签收"), "delivered.proxy");
}

#[test]
fn a_user_rule_file_can_override_the_builtin_one() {
    let n = TextNormalizer::from_toml(
        r#"
        fallback = { id = "mine.other", state = "in_transit" }
        [[rule]]
        id = "mine.signed"
        priority = 1
        state = "delivered"
        regex = ['(?i)^ok$']
        "#,
    )
    .unwrap();
    assert_eq!(n.classify_text("OK").rule, "mine.signed");
    assert_eq!(n.classify_text("ok then").rule, "mine.other");
}

#[test]
fn higher_priority_wins_regardless_of_order() {
    let n = TextNormalizer::from_toml(
        r#"
        fallback = { id = "f", state = "in_transit" }
        [[rule]]
        id = "low"
        priority = 1
        state = "delivered"
        any = ["a"]
        [[rule]]
        id = "high"
        priority = 2
        state = "refused"
        any = ["a"]
        "#,
    )
    .unwrap();
    assert_eq!(n.classify_text("a").rule, "high");
}

#[test]
fn invalid_rule_files_are_refused_with_the_reason() {
    let dup = r#"
        fallback = { id = "f", state = "in_transit" }
        [[rule]]
        id = "x"
        priority = 1
        state = "delivered"
        any = ["a"]
        [[rule]]
        id = "x"
        priority = 2
        state = "delivered"
        any = ["b"]
    "#;
    assert!(matches!(
        TextNormalizer::from_toml(dup),
        Err(RuleError::DuplicateId { id }) if id == "x"
    ));
    let empty = r#"
        fallback = { id = "f", state = "in_transit" }
        [[rule]]
        id = "x"
        priority = 1
        state = "delivered"
    "#;
    assert!(matches!(
        TextNormalizer::from_toml(empty),
        Err(RuleError::NoPattern { .. })
    ));
    let bad_regex = r#"
        fallback = { id = "f", state = "in_transit" }
        [[rule]]
        id = "x"
        priority = 1
        state = "delivered"
        regex = ["("]
    "#;
    assert!(matches!(
        TextNormalizer::from_toml(bad_regex),
        Err(RuleError::Regex { .. })
    ));
    let bad_state = r#"
        fallback = { id = "f", state = "teleported" }
    "#;
    assert!(matches!(
        TextNormalizer::from_toml(bad_state),
        Err(RuleError::Syntax { .. })
    ));
}

#[test]
fn trace_from_lines_applies_the_regression_guard() {
    use crate::model::CHINA_OFFSET;
    let t = |s| EventTime::parse(s, CHINA_OFFSET).unwrap();
    let trace = TextNormalizer::builtin().trace(
        "yuantong",
        "YT1",
        [
            (
                t("2024-05-03 09:00"),
                "您的快件已签收，签收人：前台".to_string(),
            ),
            (t("2024-05-01 10:00"), "【杭州市】快件已揽收".to_string()),
            (t("2024-05-03 11:00"), "快件派送中".to_string()),
        ],
    );
    assert_eq!(trace.state, State::DeliveredByProxy);
    assert!(trace.ischeck);
    assert_eq!(trace.data[2].rule.as_deref(), Some("collected"));
}

#[test]
fn a_line_mentioning_signing_with_a_question_hint_is_not_a_delivery() {
    assert_eq!(
        state("快件即将送达，签收时如有疑问请联系客服"),
        State::InTransit
    );
    assert_eq!(
        rule("您的快件在【北京朝阳】签收"),
        "delivered.sign_mentioned"
    );
}

#[test]
fn a_refusal_whose_return_is_under_way_is_returning() {
    assert_eq!(state("快件退回寄件人，原因：收件人拒收"), State::Returning);
    assert_eq!(state("收件人拒收，快件将退回寄件人"), State::Refused);
}

#[test]
fn english_keywords_ignore_case() {
    assert_eq!(state("OUT FOR DELIVERY"), State::OutForDelivery);
    assert_eq!(state("out for delivery"), State::OutForDelivery);
}

#[test]
fn the_normalizer_works_behind_the_trait() {
    let n: &dyn Normalizer = TextNormalizer::builtin();
    let line = RawLine {
        text: "快件已揽收",
        carrier: Some("zhongtong"),
        raw_code: None,
    };
    assert_eq!(n.classify(&line).state, State::Collected);
}

proptest::proptest! {
    #[test]
    fn classify_never_panics_on_any_text(text in "\\PC{0,80}") {
        let _ = TextNormalizer::builtin().classify_text(&text);
    }

    #[test]
    fn classify_never_panics_on_bracket_soup(text in "[【】\\[\\]〖〗［］签收驿站a1 ]{0,40}") {
        let _ = TextNormalizer::builtin().classify_text(&text);
    }
}

#[test]
fn a_rule_answer_carries_the_rules_documented_confidence() {
    let c = TextNormalizer::builtin().classify_text("快件已被 张三 代签收");
    assert_eq!((c.rule.as_str(), c.confidence), ("delivered.proxy", 0.9));
    let c = TextNormalizer::builtin().classify_text("快件离开【深圳】");
    assert_eq!(c.rule, "in_transit.movement");
    assert!(c.confidence < WEAK_RULE);
}

#[test]
fn a_line_no_rule_reads_is_answered_by_the_model_not_by_in_transit() {
    let c = TextNormalizer::builtin().classify_text("Your parcel is at the neighbour's");
    assert_eq!(c.rule, MODEL_RULE);
    assert_eq!(c.state, State::DeliveredByProxy);
    assert!(c.confidence > 0.0 && c.confidence < 1.0);
}

fn tiny(rules: &str) -> TextNormalizer {
    let lines = [
        ("包裹退回寄件人途中，到达", State::Returning),
        ("快件到达转运中心", State::AtTransferCentre),
    ];
    let model = NgramModel::train(lines.iter().cycle().take(20).copied()).unwrap();
    TextNormalizer::from_toml(rules)
        .unwrap()
        .with_model(Arc::new(model))
}

#[test]
fn a_weak_rule_is_overruled_by_a_surer_model_and_a_strong_one_is_not() {
    let weak = tiny(
        r#"
        fallback = { id = "f", state = "in_transit" }
        [[rule]]
        id = "moved"
        priority = 1
        confidence = 0.5
        state = "in_transit"
        any = ["到达"]
        "#,
    );
    let c = weak.classify_text("包裹退回寄件人途中，到达");
    assert_eq!((c.state, c.rule.as_str()), (State::Returning, MODEL_RULE));
    let strong = tiny(
        r#"
        fallback = { id = "f", state = "in_transit" }
        [[rule]]
        id = "moved"
        priority = 1
        state = "in_transit"
        any = ["到达"]
        "#,
    );
    assert_eq!(
        strong.classify_text("包裹退回寄件人途中，到达").rule,
        "moved"
    );
}

#[test]
fn without_a_model_the_fallback_answers_with_its_confidence() {
    let n = TextNormalizer::from_toml(
        r#"fallback = { id = "f", state = "in_transit", confidence = 0.2 }"#,
    )
    .unwrap();
    let c = n.classify_text("anything");
    assert_eq!((c.rule.as_str(), c.confidence), ("f", 0.2));
}

#[test]
fn a_confidence_outside_zero_to_one_is_refused() {
    let bad = r#"
        fallback = { id = "f", state = "in_transit" }
        [[rule]]
        id = "x"
        priority = 1
        confidence = 1.5
        state = "delivered"
        any = ["a"]
    "#;
    assert!(matches!(
        TextNormalizer::from_toml(bad),
        Err(RuleError::Confidence { .. })
    ));
}

#[test]
fn a_neutral_first_line_is_read_as_the_collection() {
    let n = TextNormalizer::from_toml(r#"fallback = { id = "f", state = "in_transit" }"#).unwrap();
    let c = n.classify_in_context(&["包裹交接完毕", "包裹交接完毕"]);
    assert_eq!(c[0].state, State::Collected);
    assert_eq!(c[0].rule, "context.first_line");
    assert_eq!(c[1].rule, "f");
}

#[test]
fn movement_after_a_refusal_is_the_way_back() {
    let c = TextNormalizer::builtin().classify_in_context(&[
        "快件已揽收",
        "收件人拒收，快件将退回寄件人",
        "快件离开【广州转运中心】，发往【深圳】",
        "退回件已签收，签收人：寄件人",
    ]);
    assert_eq!(c[2].state, State::Returning);
    assert_eq!(c[2].rule, "context.return_leg");
    assert_eq!(c[3].state, State::Returned);
}

#[test]
fn a_trace_keeps_the_context_reading_in_its_events() {
    use crate::model::CHINA_OFFSET;
    let t = |s| EventTime::parse(s, CHINA_OFFSET).unwrap();
    let trace = TextNormalizer::builtin().trace(
        "zhongtong",
        "ZT2",
        [
            (
                t("2024-05-04 09:00"),
                "快件到达【杭州转运中心】".to_string(),
            ),
            (t("2024-05-01 10:00"), "【杭州市】快件已揽收".to_string()),
            (t("2024-05-03 11:00"), "收件人拒收".to_string()),
        ],
    );
    assert_eq!(trace.data[0].rule.as_deref(), Some("context.return_leg"));
    assert_eq!(trace.state, State::Returning);
}

#[test]
fn builtin_model_loads() {
    let m = NgramModel::from_bytes(BUILTIN_MODEL).unwrap();
    assert!(m.classes().len() >= 40);
    assert!(m.vocabulary() > 1000);
}

#[test]
fn a_damaged_model_file_is_refused_not_panicked_on() {
    assert_eq!(
        NgramModel::from_bytes(b"nope").unwrap_err(),
        ModelError::BadHeader
    );
    let half = &BUILTIN_MODEL[..BUILTIN_MODEL.len() / 2];
    assert_eq!(
        NgramModel::from_bytes(half).unwrap_err(),
        ModelError::Truncated
    );
    assert_eq!(
        NgramModel::train(std::iter::empty()).unwrap_err(),
        ModelError::NoData
    );
}

proptest::proptest! {
    #[test]
    fn model_never_panics_and_confidence_stays_in_range(text in "\\PC{0,80}") {
        if let Some((_, p)) = NgramModel::builtin().predict(&text) {
            proptest::prop_assert!((0.0..=1.0).contains(&p));
        }
    }

    #[test]
    fn model_file_never_panics_on_garbage(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
        let mut file = b"WBNG\x01".to_vec();
        file.extend(bytes);
        let _ = NgramModel::from_bytes(&file);
    }
}
