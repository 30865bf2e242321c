import dualgraph as dg


def test_article_first_example():
    x = dg.tensor([2.0], requires_grad=True)
    y = x ** 2
    z = y * 3
    z.backward()
    assert repr(x.grad) == "tensor([12.])"
    assert repr(y) == "tensor([4.], grad_fn=<PowBackward>)"
