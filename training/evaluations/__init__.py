"""Did training help? A tuned model against its base (or any two models) on held-out prompts: both answer with the
same decoding settings, the project's judge compares them in both orders, people may too, and a report says with
intervals whether the tuned model wins (training.services.evaluations drives it; stats.py holds the maths)."""
