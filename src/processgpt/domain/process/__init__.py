"""Business processes: the one internal model every definition format compiles to
(:mod:`.model`), and the pure engine that advances an instance over it (:mod:`.engine`)."""
