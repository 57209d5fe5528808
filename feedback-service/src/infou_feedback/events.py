"""What feedback-service publishes (through its outbox, in the transaction of the change; the
subject names are declared in infou_libs.subjects).
It consumes nothing: session-service is asked over gRPC (session_access.py).

- events.feedback.submitted (FeedbackSubmitted): every feedback, a replacement naming the
  rating it replaced; catalog rates curated sub-topics, generation counts generated ones.
- events.feedback.progress_recorded (ProgressRecorded): every progress entry, with the
  session's totals after it; session-service sets its progress from them.
- events.feedback.session_analytics_updated (SessionAnalyticsUpdated): a session's completion
  rate changed; catalog averages it per main topic.
- events.feedback.difficulty_adjusted (DifficultyAdjusted): adaptive difficulty moved the
  learner a level; session-service converts the unread articles and tells the watchers.
"""
