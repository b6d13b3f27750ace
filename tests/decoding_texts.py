"""Sample texts the decoding tests share: an intent YAML and a JSGF grammar (the grammar tests and
the parser fuzzer mutate them) and a small trigram ARPA LM (the LM tests and the fuzzer)."""

INTENTS = """
# the issue's example
intents:
  LightOn:
    - "turn on the {room} light"
    - "[please] switch (on | up) the {room} light"
  Timer:
    - "set a timer for {minutes} minutes"
slots:
  room: [kitchen, bedroom, garage]
  minutes: [two, five, ten]
"""

JSGF = """#JSGF V1.0;
grammar lights;
// nested rules, optional words, groups
public <command> = <action> [the] <object> | stop;
<action> = turn on | switch off;
<object> = (kitchen | bedroom) light;
"""

TRIGRAM = """
some header text ignored before the data section

\\data\\
ngram 1=7
ngram 2=6
ngram 3=3

\\1-grams:
-1.0\t<unk>\t-0.3
-99\t<s>\t-0.5
-0.7\t</s>
-0.6\ta\t-0.25
-0.8\tb\t-0.2
-1.2\tab\t-0.1
-0.9\tba

\\2-grams:
-0.3 <s> a -0.15
-0.4 a b -0.05
-0.2 b a
-0.5 a </s>
-0.6 <s> ab -0.4
-0.35 ab a

\\3-grams:
-0.1 <s> a b
-0.15 a b a
-0.05 <s> ab a

\\end\\
"""
