"""Every public function of factory/api.py is reachable as factory.<name> (issue 26: the
Python API is what the CLI calls, so a verb the CLI has is one a script can import), and a
verb named like a submodule (factory.browse, factory.preview) is both."""
import inspect

import factory
import factory.api


def test_every_public_api_function_is_exported_from_the_package():
    public = {name for name, f in inspect.getmembers(factory.api, inspect.isfunction)
              if f.__module__ == "factory.api" and not name.startswith("_")}
    assert public <= set(factory.__all__), sorted(public - set(factory.__all__))
    for name in public:
        assert callable(getattr(factory, name)), name


def test_a_verb_named_like_a_submodule_is_callable_and_still_a_module():
    import factory.browse.serve  # noqa: F401 - binds factory.browse the way an import elsewhere would
    import factory.preview  # noqa: F401

    assert callable(factory.browse) and callable(factory.preview)
    assert factory.browse.serve.__name__ == "factory.browse.serve"
