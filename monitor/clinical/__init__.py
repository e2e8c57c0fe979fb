"""The clinic's rules, pure: the session state machine (``session``), the clinic's protocols as
data (``protocols``) and the rules that judge a session under them (``rules``), the course of
treatments (``course``, ``scores``) and the REMS form (``rems``). No I/O, no clock reads: time
is an argument. docs/protocols.md and docs/course.md state the rules and their sources."""
