"""Pure decisions (no I/O, no database, no clock but the `now` they are given): each rule is a function
of plain values that returns a `rules.decision.Decision` (rule, action, reason), and each kind of
decision is a chain of rules tried in order, first decisive hit wins (`rules.decision.run`). The store
gathers the facts, applies the decision and records it.

`decision` (the Decision type and the chain runner), `closed_case` (a message to a closed case),
`opening` (whether a mail that continues no case opens one), `loops` (flood and acknowledgement limits),
`acknowledgement` (whether to write to the sender), `assignment` (the owner of a new case), `lifecycle`
(the case status model)."""
