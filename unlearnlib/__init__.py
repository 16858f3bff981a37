"""unlearnlib: the shared, tested code of the machine unlearning course.

Start a notebook or script with :func:`unlearnlib.session.start`; see the README for a map of the modules.
"""
