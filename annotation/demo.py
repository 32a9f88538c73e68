"""Demo data written by the project: prompts with a careful and a careless answer each, so a newcomer has
something real-looking to label. Nothing here is copied from a third-party dataset."""

from __future__ import annotations

DEMO_GUIDELINES = """# How to judge

Pick the response that a careful expert would rather send to the person who asked.

1. **Correctness first.** A wrong fact or broken code loses, however well written.
2. **Then helpfulness:** does it answer *this* question, at the right length?
3. **Then clarity and tone.**

Choose **tie** only when you would honestly be equally happy with either, and **both bad** when neither
should be sent. Use the rationale for anything a lead should know.
"""

# (prompt, careful answer, careless answer)
_ITEMS: list[tuple[str, str, str]] = [
    (
        "How do I reverse a list in Python without modifying the original?",
        "Use slicing, which returns a new list:\n\n```python\nitems = [1, 2, 3]\nreversed_items = items[::-1]\n```\n\n"
        "`list(reversed(items))` works too. Avoid `items.reverse()` here: it reverses in place and returns `None`.",
        "Call `items.reverse()` and it gives you the reversed list.",
    ),
    (
        "What is the boiling point of water at the top of Mount Everest?",
        "About **70 °C** (roughly 160 °F). Air pressure at the summit is about a third of sea level, so water boils "
        "at a much lower temperature, which is why cooking takes longer at altitude.",
        "Water always boils at 100 °C, altitude doesn't matter.",
    ),
    (
        "Write a haiku about autumn rain.",
        "Cold rain on maples —\nred leaves let go one by one,\nthe gutter sings low.",
        "Autumn rain is wet\nit falls down from the sky\nI like autumn rain a lot",
    ),
    (
        "Explain what a database index is to a new developer.",
        "An index is a separate, sorted structure (usually a B-tree) that maps column values to the rows that hold "
        "them. Like a book's index, it lets the database jump to matching rows instead of reading the whole table. "
        "The cost: every insert or update must also update the index, and it takes disk space — so index the columns "
        "you filter, join or sort on, not all of them.",
        "An index makes the database faster. You should add indexes to all columns.",
    ),
    (
        "My SQL query `SELECT * FROM users WHERE name = '` + input + `'` is built by string concatenation. Is that OK?",
        "No — that is open to **SQL injection**: input such as `' OR '1'='1` changes the query. Use parameters:\n\n"
        '```python\ncursor.execute("SELECT * FROM users WHERE name = %s", [name])\n```\n\n'
        "The driver sends the value separately from the SQL, so it can never be read as code.",
        "It's fine as long as users are trusted. You can also escape quotes by hand.",
    ),
    (
        "Summarize the plot of Romeo and Juliet in two sentences.",
        "Two young lovers from feuding families in Verona marry in secret. A chain of misunderstandings ends with both "
        "taking their own lives, which finally reconciles their families.",
        "Romeo and Juliet is a play by Shakespeare. It is very famous and has been adapted many times. It is about "
        "love. There are many characters in it.",
    ),
    (
        "How many hours should an adult sleep per night?",
        "Most adults need **7–9 hours**. Needs vary a little between people; regularly getting under 7 is linked to "
        "worse concentration and health, so a consistent schedule matters as much as the total.",
        "4 hours is enough if you drink coffee.",
    ),
    (
        "Translate 'Where is the train station?' into Spanish.",
        "**¿Dónde está la estación de tren?**",
        "¿Dónde es la tren estación?",
    ),
    (
        "What's the difference between `git merge` and `git rebase`?",
        "Both integrate changes from one branch into another.\n\n- **merge** keeps history as it happened and adds a "
        "merge commit.\n- **rebase** replays your commits on top of the other branch, giving a linear history but "
        "rewriting commit ids.\n\nRule of thumb: rebase your own unpublished work; merge shared branches.",
        "They are the same thing, rebase is just the newer name.",
    ),
    (
        "Give me a quick recipe for a vinaigrette.",
        "Whisk **3 parts oil to 1 part vinegar** (e.g. 3 tbsp olive oil, 1 tbsp red wine vinegar), add 1 tsp Dijon "
        "mustard to emulsify, a pinch of salt and pepper. Taste and adjust; shake in a jar to re-mix.",
        "Mix oil and vinegar.",
    ),
    (
        "Is it safe to look at a solar eclipse with sunglasses?",
        "**No.** Ordinary sunglasses do not block enough light and can let the sun burn your retina without pain. Use "
        "certified eclipse glasses (ISO 12312-2) or a pinhole projector.",
        "Yes, dark sunglasses are fine for a few minutes.",
    ),
    (
        "Write a function that checks whether a string is a palindrome.",
        "```python\ndef is_palindrome(text: str) -> bool:\n    cleaned = [c.lower() for c in text if c.isalnum()]\n"
        "    return cleaned == cleaned[::-1]\n```\n\nIt ignores case, spaces and punctuation, so "
        '`is_palindrome("A man, a plan, a canal: Panama")` is `True`.',
        "```python\ndef is_palindrome(s):\n    return s == reversed(s)\n```",
    ),
]


def demo_pairs() -> list[dict]:
    """Records in Arbiter's `pairs` import format. The careful answer alternates between A and B so the file itself
    carries no position pattern."""
    records = []
    for i, (prompt, good, bad) in enumerate(_ITEMS):
        a, b = (good, bad) if i % 2 == 0 else (bad, good)
        records.append(
            {
                "id": f"demo-{i + 1:03d}",
                "prompt": prompt,
                "response_a": a,
                "response_b": b,
                "model_a": "demo-careful" if a is good else "demo-careless",
                "model_b": "demo-careful" if b is good else "demo-careless",
                "metadata": {"source": "arbiter-demo"},
            }
        )
    # Two multi-turn prompts, shown as a chat.
    records.append(
        {
            "id": "demo-chat-001",
            "prompt": [
                {"role": "user", "content": "I'm planning a 3-day trip to Lisbon."},
                {"role": "assistant", "content": "Nice! What would you like help with — sights, food, or transport?"},
                {"role": "user", "content": "Transport from the airport to the centre."},
            ],
            "response_a": "The **metro red line** runs from the airport to the centre in about 20 minutes; change at "
            "Alameda or São Sebastião for other lines. A taxi or ride-hail takes 15–30 minutes depending on traffic.",
            "response_b": "Take a taxi.",
            "model_a": "demo-careful",
            "model_b": "demo-careless",
        }
    )
    records.append(
        {
            "id": "demo-chat-002",
            "prompt": [
                {"role": "system", "content": "You are a concise assistant."},
                {"role": "user", "content": "Convert 5 miles to kilometres."},
            ],
            "response_a": "5 miles = 8 km.",
            "response_b": "5 miles ≈ **8.05 km** (1 mile = 1.609 km).",
            "model_a": "demo-careless",
            "model_b": "demo-careful",
        }
    )
    # Calibration pairs with the expected answer and why: the first two train each annotator (practice, with
    # feedback), the rest are mixed in unannounced.
    for i, (prompt, a, b, gold, why) in enumerate(_CALIBRATION):
        records.append({"id": f"demo-gold-{i + 1:03d}", "prompt": prompt, "response_a": a, "response_b": b,
                        "gold": gold, "gold_explanation": why, "metadata": {"source": "arbiter-demo"}})  # fmt: skip
    return records


# (prompt, response A, response B, expected answer, explanation quoting the demo guidelines)
_CALIBRATION: list[tuple[str, str, str, str, str]] = [
    (
        "How many bytes are in a kibibyte?",
        "A kibibyte (KiB) is **1,024 bytes**; a kilobyte (kB) is 1,000 bytes.",
        "A kibibyte is 1,000 bytes.",
        "A",
        "Guideline 1, *correctness first*: B states a wrong fact, so A wins however short both are.",
    ),
    (
        "Give me a one-line shell command to count the lines in `notes.txt`.",
        "There are many ways to count lines in a file. You could open it in an editor and look at the line numbers, "
        "or write a small Python script that reads the file and counts newline characters, or use a shell tool.",
        "`wc -l < notes.txt`",
        "B",
        "Guideline 2, *helpfulness*: the question asks for one command; B gives it, A talks around it.",
    ),
    (
        "What is 12 × 12?",
        "144.",
        "12 × 12 = **144**.",
        "tie",
        "Both are correct and answer exactly what was asked: choose **tie** when you would honestly be equally happy "
        "sending either.",
    ),
]
