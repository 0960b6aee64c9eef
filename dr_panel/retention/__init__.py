"""Retention and disposal: the schedule of how long identifiable data is kept, the disposal job
that erases it when the time is up (keeping the anonymised facts that trends count), and the
subject-access export that shows a living person everything held about them."""
