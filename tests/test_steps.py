import pytest

from losspath.errors import LosspathError
from losspath.steps import checkpoint_schedule, format_step, frankle_schedule, iterations_per_epoch, parse_step


def test_iterations_per_epoch_is_ceil():
    assert iterations_per_epoch(60000, 128) == 469
    assert iterations_per_epoch(50000, 128) == 391
    assert iterations_per_epoch(4000, 100) == 40
    assert iterations_per_epoch(4000, 0) == 1  # full batch
    assert iterations_per_epoch(10, 128) == 1


@pytest.mark.parametrize("text,expected", [("160ep", 160 * 391), ("1000it", 1000), ("2ep50it", 832),
                                           ("0ep", 0), ("7", 7), (" 3EP ", 1173)])
def test_parse_step(text, expected):
    assert parse_step(text, 391) == expected


@pytest.mark.parametrize("bad", ["", "ep", "it", "1.5ep", "-1it", "3 ep", "50it2ep", "epoch", "2e"])
def test_parse_step_rejects(bad):
    with pytest.raises(LosspathError, match="not of the form"):
        parse_step(bad, 391)


def test_format_step_round_trip():
    for it in [0, 5, 391, 392, 62560]:
        assert parse_step(format_step(it, 391), 391) == it
    assert format_step(832, 391) == "2ep50it"


def test_frankle_schedule_contents():
    # LeNet-300-100 on MNIST: 40 epochs of 469 iterations = 18,760.
    assert frankle_schedule(18760) == [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024] + \
        list(range(2000, 18001, 1000)) + [18760]
    assert frankle_schedule(100) == [0, 1, 2, 4, 8, 16, 32, 64, 100]
    assert frankle_schedule(2000) == [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2000]
    assert 1000 not in frankle_schedule(5000)  # k > 1: 1000 itself is not in the set


def test_checkpoint_schedule_forms():
    assert checkpoint_schedule("epochs", 10, 4) == [0, 4, 8, 10]
    assert checkpoint_schedule("every:3it", 10, 4) == [0, 3, 6, 9, 10]
    assert checkpoint_schedule("5it, 1ep, last", 10, 4) == [0, 4, 5, 10]
    assert checkpoint_schedule("frankle", 20, 4) == [0, 1, 2, 4, 8, 16, 20]
    with pytest.raises(LosspathError, match="after the last step"):
        checkpoint_schedule("3ep", 10, 4)
    with pytest.raises(LosspathError):
        checkpoint_schedule("every:0it", 10, 4)
