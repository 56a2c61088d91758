"""Getting a machine ready for an agent: the setup wizard's answers and plan, and the
prerequisite checks (`prerequisites` for the runner and result types, `checks` for the checks
themselves). Nothing here imports Qt.

Kept empty of imports so that importing one part does not load the others.
"""
