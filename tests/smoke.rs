mod common;
use common::*;

#[test]
fn add_and_backward_smoke() {
    let a = leaf(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
    let b = leaf(&[10.0, 20.0, 30.0], &[3]);
    let c = wgformer::ops::add(&a, &b).unwrap();
    assert_eq!(c.to_vec().unwrap(), vec![11.0, 22.0, 33.0, 14.0, 25.0, 36.0]);
    let s = wgformer::ops::sum_axis(&c.reshape(&[6]).unwrap(), 0).unwrap();
    s.backward().unwrap();
    assert_eq!(grad_of(&a), vec![1.0; 6]);
    assert_eq!(grad_of(&b), vec![2.0; 3]);
}
