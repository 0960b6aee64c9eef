"""Real-style UK drug-alert wording: none of it identifies anyone, and all of it must pass the
identifier detector with stored people whose surnames are everyday words (Brown, White, Hill).

Written after the alerts that local drug information systems, RDIS and public-health teams
publish: substances, colours, markings, doses, places at town level, age ranges, recent dates,
services' own numbers."""

from __future__ import annotations

from datetime import date, timedelta


def corpus(today: date) -> list[str]:
    """The texts, with dates relative to ``today`` so "recent" stays recent."""
    recent = today - timedelta(days=12)
    last_month = today - timedelta(days=40)
    since = f"{recent.day} {recent:%B %Y}"
    return [
        "Nitazenes have been found in tablets sold as oxycodone 80mg in Blackpool town centre.",
        "Blue tablets marked 'OP 80' sold as oxycodone contain a nitazene, not oxycodone.",
        f"Since {since}, fewer than 8 people have needed hospital care after using heroin.",
        "Brown powder sold as heroin has tested positive for xylazine in Preston and Chorley.",
        "White tablets marked 'DB' sold as diazepam contain bromazolam.",
        "Men aged 30-49 who inject heroin are most affected; some were found in hostels.",
        "Talk to FRANK on 0300 123 6600 for free, confidential advice, 24 hours a day.",
        "If someone will not wake up, call 999, give naloxone and put them in the recovery "
        "position.",
        "Xylazine causes deep sedation and wounds that can become severe; naloxone does not "
        "reverse xylazine but still give it, as opioids are usually present too.",
        "Around 15 people in the region, about 20 in 2025, have been affected.",
        "Do not use alone. Start with a small test dose and wait at least 30 minutes.",
        "Treatment services should offer naloxone to everyone on their caseload this week.",
        "Green and yellow capsules sold as pregabalin 300mg contain an unknown sedative.",
        f"Reports came from Hill Street, Talbot Road and Central Drive since {last_month:%B %Y}.",
        "A&E staff: consider a nitazene when naloxone works for only a short while.",
        "Outreach teams have seen people collapse within minutes of smoking the white rocks.",
        "The drug checking service in Lancaster found isotonitazene in 3 of 5 samples.",
        "Pink and white tablets stamped with a crown are being sold as MDMA at festivals.",
        "People aged 18-25 in Blackpool, Fleetwood and Lytham have reported strong effects.",
        "Crack cocaine cut with levamisole has been seen in Burnley and Blackburn.",
        "Fake Xanax (alprazolam) bars, yellow and white, contain flualprazolam.",
        "Ketamine sold in small bags may contain 2F-deschloroketamine (2F-DCK).",
        "Synthetic cannabinoids (spice) with MDMB-4en-PINACA are causing seizures in prisons.",
        "Heroin users in Morecambe report the brown is weaker and some are using more.",
        "Spice vapes sold as THC vapes to young people have led to 4 hospital admissions.",
        "The local drug information system issued this alert at amber on the RAG rating.",
        "Please share this with frontline staff, peer mentors and lived-experience groups.",
        "Signs of harm: pinpoint pupils, slow or stopped breathing, blue lips, drowsiness.",
        "Professionals can report harms through the LDIS online form, quoting alert number 7.",
        "Naloxone kits are free from any pharmacy in the Fylde Coast needle exchange scheme.",
        "Benzodiazepines bought online were found to contain bromazolam and desalkylgidazepam.",
        "Young people in Wyre said the tablets were called 'blue Valium' or 'street Vallies'.",
        f"Since {recent.day} {recent:%b %Y} the ambulance service has attended more overdoses.",
        "Opioid overdoses rose in the north of the county and in the seafront hostels.",
        "Rapid tests for nitazenes and xylazine strips are available at the drug service.",
        "Cocaine mixed with a nitazene was found at a house party; several people were unwell.",
        "Methadone and buprenorphine users should not use street benzos on top of their script.",
        "The tablets weigh about 10mg and are scored on one side; 2.5 mg pieces are sold too.",
        "Over 3 days, 6 people in the town centre were given naloxone by police and paramedics.",
        "Stay with the person, keep them warm, and tell the paramedics what they took.",
        "Hostels: check on residents every hour overnight and keep naloxone at reception.",
        "GPs and pharmacists: ask patients buying codeine about other opioid use.",
        "This alert replaces the notice of last week and will be reviewed in 14 days.",
        "Colours reported: white, brown, pink and light blue; markings 'M 30' and 'DB'.",
        "For advice call the Blackpool drug service on 0300 555 0101 (Monday to Friday).",
        "In 2019 a similar batch caused deaths in Scotland; in 2023 one reached Lancashire.",
        "Street names include 'tranq', 'sleep-cut' and 'zombie drug'.",
    ]
