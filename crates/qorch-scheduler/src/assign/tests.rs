use super::*;

#[test]
fn builder_drops_options_that_never_fit_and_detects_dense() {
    let mut b = AssignmentBuilder::new(1, vec![5.0, 5.0]);
    let i = b.add_item(None);
    b.add_option(i, 1, 2.0, &[3.0])
        .add_option(i, 0, 1.0, &[6.0]);
    let p = b.build().unwrap();
    assert_eq!(p.num_options(), 1);
    assert!(!p.dense);
    let mut b = AssignmentBuilder::new(1, vec![5.0, 5.0]);
    let i = b.add_item(None);
    b.add_option(i, 0, 2.0, &[6.0]);
    assert_eq!(b.build(), Err(ScheduleError::NoFeasibleOption { item: 0 }));
}
