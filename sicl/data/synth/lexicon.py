"""Word lists of the synthetic world (data only; grammars live in ``text.py``).

All lower-case ASCII, one token per entry. The adult lists form the general vocabulary; the science and
reading lists are the child domains' rare vocabulary, checked at import time (``text.py``) never to occur
in adult text, and reading words never in science.
"""

from __future__ import annotations

NAMES = """anna ben carla david emma frank grace henry irene jack kate leo maria nick olivia peter rosa sam tina
victor wendy adam bella chris diana eric fiona george helen ivan julia kevin laura mark nora oscar paula ryan
sarah tom uma vera will zoe alice bruno clara daniel elena felix hannah isaac james lucy martin nina owen
rachel simon tara""".split()

# (singular, plural) pairs: plurals are needed for "how many ... were there" questions.
ANIMALS = [tuple(p.split("/")) for p in """dog/dogs cat/cats horse/horses cow/cows pig/pigs goat/goats
duck/ducks chicken/chickens rabbit/rabbits mouse/mice bird/birds lion/lions tiger/tigers bear/bears
wolf/wolves fox/foxes monkey/monkeys elephant/elephants zebra/zebras giraffe/giraffes camel/camels
donkey/donkeys snake/snakes frog/frogs turtle/turtles parrot/parrots owl/owls eagle/eagles whale/whales
dolphin/dolphins shark/shark spider/spiders penguin/penguins kangaroo/kangaroos""".split()]
ANIMALS = [(s, "sharks" if s == "shark" else p) for s, p in ANIMALS]

OBJECTS = [tuple(p.split("/")) for p in """book/books pen/pens phone/phones key/keys bag/bags box/boxes
chair/chairs table/tables lamp/lamps cup/cups plate/plates bottle/bottles glass/glasses hat/hats coat/coats
shoe/shoes shirt/shirts umbrella/umbrellas ticket/tickets letter/letters map/maps clock/clocks
watch/watches camera/cameras laptop/laptops radio/radios ball/balls guitar/guitars piano/pianos
picture/pictures window/windows door/doors wallet/wallets card/cards gift/gifts basket/baskets
bucket/buckets ladder/ladders hammer/hammers rope/ropes towel/towels pillow/pillows blanket/blankets
candle/candles mirror/mirrors brush/brushes jacket/jackets scarf/scarves glove/gloves ring/rings
necklace/necklaces notebook/notebooks envelope/envelopes newspaper/newspapers magazine/magazines
computer/computers spoon/spoons fork/forks knife/knives sofa/sofas bed/beds""".split()]

COLORS = "red blue green yellow black white orange purple pink brown gray silver".split()
NUMBERS = "two three four five six seven eight nine ten eleven twelve".split()
FOODS = """bread cheese soup rice pasta pizza salad coffee tea milk juice cake chocolate butter honey sugar
salt pepper beef sandwich burger noodles pie cookie banana apple lemon grape cherry potato tomato onion
carrot cereal yogurt pancake steak bacon sausage popcorn candy""".split()
VEHICLES = "car bus truck bike train boat plane taxi van tram ship scooter tractor motorbike".split()
PLACES = """park market station airport library museum hospital school office bank bakery beach river lake
hotel restaurant cinema theater garden farm village city church stadium harbor shop supermarket kitchen
garage bridge castle mall pharmacy gym pool zoo factory campus square corner island""".split()
ADJECTIVES = """big small old new young happy sad tired busy quiet loud warm cold hot cheap expensive heavy
beautiful ugly clean dirty tall short long empty full strange famous friendly angry lucky funny nice dark
bright soft hard slow wet dry fresh broken lovely huge tiny wooden""".split()
# Past-tense transitive verbs ("x VERB the y").
VERBS_T = """bought sold found lost saw took brought carried cleaned painted opened closed fixed washed liked
wanted needed moved dropped picked borrowed ordered watched cooked made kept left sent held checked packed
hid broke""".split()
# Past-tense motion verbs ("x VERB to the place").
VERBS_MOVE = "went walked drove ran came rode flew travelled returned hurried".split()
# Past-tense intransitive verbs ("x VERB in the place").
VERBS_I = "slept sang danced laughed waited worked played talked smiled cried jumped rested".split()
RELATIVES = """mother father sister brother uncle aunt cousin friend neighbor grandmother grandfather son
daughter""".split()
PROFESSIONS = """doctor nurse driver cook farmer pilot waiter artist singer officer baker painter teacher
student lawyer engineer writer dancer mechanic builder""".split()
EVENTS = "party wedding meeting picnic holiday trip birthday concert game festival lesson".split()
TIMES = ["yesterday", "last night", "last week", "this morning", "on monday", "on tuesday", "on friday",
         "on sunday", "in the evening", "after lunch", "before dinner", "at noon", "at midnight",
         "last summer", "this afternoon", "every day"]
ADVERBS = "quickly slowly quietly happily loudly carefully suddenly again".split()

# ---------------------------------------------------------------------------------------------------
# Child science talk (MyST-like). Each topic: domain nouns and predicates ("{n}" = another domain noun).
SCIENCE: dict[str, dict[str, list[str]]] = {
    "magnets": {
        "nouns": "magnet paperclip compass iron nickel filings lodestone horseshoe electromagnet steel".split(),
        "preds": ["attracts the {n}", "repels the {n}", "is magnetic", "has two poles", "sticks because of magnetism",
                  "changes the polarity"]},
    "circuits": {
        "nouns": "circuit battery bulb wire switch conductor insulator terminal filament resistor buzzer".split(),
        "preds": ["makes the current flow", "needs more voltage", "is made of copper", "lets the electrons move",
                  "lights up the {n}", "connects to the {n}"]},
    "water": {
        "nouns": "vapor droplets puddle thermometer groundwater runoff humidity condensation".split(),
        "preds": ["evaporates in the sun", "condenses on the {n}", "turns into precipitation", "freezes at zero celsius",
                  "goes up by evaporation", "makes the {n} bigger"]},
    "plants": {
        "nouns": "pollen petals stamen pistil nectar seedling roots stem chlorophyll sprout fertilizer".split(),
        "preds": ["needs photosynthesis", "helps the {n} germinate", "can pollinate the {n}", "grows from the {n}",
                  "makes the {n} sprout"]},
    "lifecycle": {
        "nouns": "caterpillar chrysalis cocoon larva pupa tadpole butterfly moth antennae thorax abdomen insect".split(),
        "preds": ["hatches from the {n}", "molts its skin", "goes through metamorphosis", "turns into a {n}",
                  "lives in the {n}"]},
    "rocks": {
        "nouns": "sediment fossil mineral crystal quartz granite basalt magma lava pebble sandstone".split(),
        "preds": ["is sedimentary", "is igneous", "becomes metamorphic", "is worn down by erosion",
                  "forms from the {n}", "is harder than the {n}"]},
    "sound": {
        "nouns": "vibration eardrum xylophone membrane oscilloscope cochlea wavelength decibels".split(),
        "preds": ["vibrates really fast", "changes the frequency", "has a bigger amplitude", "echoes off the {n}",
                  "makes the {n} vibrate", "needs tuning"]},
    "light": {
        "nouns": "prism spectrum lens periscope laser photons shadow rainbow".split(),
        "preds": ["bends by refraction", "reflects off the {n}", "is opaque", "is translucent", "is transparent",
                  "makes a reflection", "is magnifying the {n}"]},
    "machines": {
        "nouns": "lever fulcrum pulley wedge gears axle incline pendulum".split(),
        "preds": ["reduces the friction", "has more momentum", "needs less force", "works because of gravity",
                  "keeps its inertia", "lifts the {n}"]},
    "ecosystems": {
        "nouns": "predator prey herbivore carnivore omnivore decomposer habitat ecosystem organism bacteria fungi algae plankton".split(),
        "preds": ["eats the {n}", "lives in the {n}", "is a producer", "is a consumer", "breaks down the {n}",
                  "needs a {n} to survive"]},
}

# ---------------------------------------------------------------------------------------------------
# Read-aloud stories (RSR-like). Each topic: hero names, creatures, things, story places.
READING: dict[str, dict[str, list[str]]] = {
    "forest": {"heroes": ["pipkin", "thistlewood"], "creatures": "badger hedgehog squirrel woodpecker".split(),
               "things": "acorn toadstool chestnut fern".split(), "places": "glade thicket burrow bramble".split()},
    "sea": {"heroes": ["marina", "barnacle"], "creatures": "mermaid seagull starfish octopus".split(),
            "things": "seashell driftwood anchor seaweed".split(), "places": "lagoon lighthouse reef shipwreck".split()},
    "castle": {"heroes": ["rowan", "elowen"], "creatures": "dragon goblin unicorn griffin".split(),
               "things": "scroll potion cauldron emerald".split(), "places": "moat drawbridge dungeon tower".split()},
    "snow": {"heroes": ["frostina", "bramwell"], "creatures": "yeti marmot walrus reindeer".split(),
             "things": "icicle snowflake mitten sled".split(), "places": "glacier cavern summit snowdrift".split()},
    "space": {"heroes": ["zephyr", "cosmo"], "creatures": "astronaut martian robot alien".split(),
              "things": "rocket comet asteroid telescope".split(), "places": "nebula galaxy crater orbit".split()},
    "meadow": {"heroes": ["marigold", "tansy"], "creatures": "bumblebee ladybug firefly scarecrow".split(),
               "things": "buttercup daisy lantern pumpkin".split(), "places": "meadow orchard haystack windmill".split()},
    "desert": {"heroes": ["sandor", "oasia"], "creatures": "scorpion lizard vulture jackal".split(),
               "things": "cactus sandal sundial canteen".split(), "places": "oasis dune canyon mesa".split()},
    "jungle": {"heroes": ["kipling", "lulabelle"], "creatures": "jaguar toucan sloth chameleon".split(),
               "things": "vine mango coconut feather".split(), "places": "waterfall treetop swamp temple".split()},
}
