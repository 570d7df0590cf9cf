"""Fixed tables of the synthetic registry: names, districts, blocks and school kinds.

Names are pairs of the Latin spelling and the Bengali script, so that a student's
``name.en`` and ``name.bn`` always transliterate each other. The districts are West
Bengal's 23, each with a few of its community development blocks or towns.
"""

from __future__ import annotations

from typing import Final

NamePair = tuple[str, str]

GENERAL_MALE: Final[tuple[NamePair, ...]] = (
    ("Arijit", "অরিজিৎ"), ("Sourav", "সৌরভ"), ("Shovan", "শোভন"),
    ("Debashis", "দেবাশিস"), ("Subhajit", "শুভজিৎ"), ("Rahul", "রাহুল"),
    ("Amit", "অমিত"), ("Abhishek", "অভিষেক"), ("Pradip", "প্রদীপ"),
    ("Sandip", "সন্দীপ"), ("Tanmoy", "তন্ময়"), ("Arnab", "অর্ণব"),
    ("Soumya", "সৌম্য"), ("Ritam", "ঋতম"), ("Aritra", "অরিত্র"),
    ("Debjit", "দেবজিৎ"), ("Suman", "সুমন"), ("Partha", "পার্থ"),
    ("Rajib", "রাজীব"), ("Biswajit", "বিশ্বজিৎ"), ("Anirban", "অনির্বাণ"),
    ("Kaushik", "কৌশিক"), ("Sayan", "সায়ন"), ("Rohan", "রোহন"),
    ("Ayan", "অয়ন"), ("Sagnik", "সাগ্নিক"), ("Rupam", "রূপম"),
    ("Subhankar", "শুভঙ্কর"), ("Indranil", "ইন্দ্রনীল"), ("Tapas", "তাপস"),
    ("Gautam", "গৌতম"), ("Prasenjit", "প্রসেনজিৎ"), ("Dipankar", "দীপঙ্কর"),
    ("Sudip", "সুদীপ"), ("Ankan", "অঙ্কন"), ("Pritam", "প্রীতম"),
    ("Souvik", "সৌভিক"), ("Bikash", "বিকাশ"), ("Swapan", "স্বপন"),
    ("Nirmal", "নির্মল"),
)  # fmt: skip

GENERAL_FEMALE: Final[tuple[NamePair, ...]] = (
    ("Ananya", "অনন্যা"), ("Priya", "প্রিয়া"), ("Rupa", "রূপা"),
    ("Moumita", "মৌমিতা"), ("Sreya", "শ্রেয়া"), ("Payel", "পায়েল"),
    ("Tanushree", "তনুশ্রী"), ("Riya", "রিয়া"), ("Puja", "পূজা"),
    ("Sanchita", "সঞ্চিতা"), ("Debjani", "দেবযানী"), ("Ankita", "অঙ্কিতা"),
    ("Rimpa", "রিম্পা"), ("Soma", "সোমা"), ("Mitali", "মিতালী"),
    ("Sharmila", "শর্মিলা"), ("Koyel", "কোয়েল"), ("Trisha", "তৃষা"),
    ("Aditi", "অদিতি"), ("Srabanti", "শ্রাবন্তী"), ("Madhumita", "মধুমিতা"),
    ("Arpita", "অর্পিতা"), ("Bipasha", "বিপাশা"), ("Chandrima", "চন্দ্রিমা"),
    ("Dipika", "দীপিকা"), ("Ishita", "ঈশিতা"), ("Jayashree", "জয়শ্রী"),
    ("Kakali", "কাকলি"), ("Laboni", "লাবণী"), ("Nandini", "নন্দিনী"),
    ("Oindrila", "ঐন্দ্রিলা"), ("Piyali", "পিয়ালী"), ("Rumki", "রুমকি"),
    ("Sampa", "সম্পা"), ("Tania", "টানিয়া"), ("Urmila", "ঊর্মিলা"),
)  # fmt: skip

GENERAL_SURNAMES: Final[tuple[NamePair, ...]] = (
    ("Roy", "রায়"), ("Das", "দাস"), ("Ghosh", "ঘোষ"), ("Mondal", "মণ্ডল"),
    ("Sarkar", "সরকার"), ("Biswas", "বিশ্বাস"), ("Mukherjee", "মুখার্জি"),
    ("Chatterjee", "চ্যাটার্জি"), ("Banerjee", "ব্যানার্জি"), ("Bose", "বসু"),
    ("Dutta", "দত্ত"), ("Saha", "সাহা"), ("Pal", "পাল"), ("Sen", "সেন"),
    ("Chakraborty", "চক্রবর্তী"), ("Bhattacharya", "ভট্টাচার্য"),
    ("Majumdar", "মজুমদার"), ("Halder", "হালদার"), ("Naskar", "নস্কর"),
    ("Bag", "বাগ"), ("Maity", "মাইতি"), ("Jana", "জানা"), ("Barman", "বর্মন"),
    ("Mahato", "মাহাতো"), ("Hansda", "হাঁসদা"), ("Murmu", "মুর্মু"),
    ("Soren", "সরেন"), ("Tudu", "টুডু"), ("Hembram", "হেমব্রম"), ("Dey", "দে"),
    ("Guha", "গুহ"), ("Kundu", "কুণ্ডু"), ("Nandi", "নন্দী"),
    ("Adhikari", "অধিকারী"), ("Pramanik", "প্রামাণিক"), ("Bauri", "বাউরি"),
)  # fmt: skip

MUSLIM_MALE: Final[tuple[NamePair, ...]] = (
    ("Rahim", "রহিম"), ("Abdul", "আব্দুল"), ("Sahil", "সাহিল"),
    ("Imran", "ইমরান"), ("Arif", "আরিফ"), ("Rafiq", "রফিক"),
    ("Jahangir", "জাহাঙ্গীর"), ("Sabir", "সাবির"), ("Nasir", "নাসির"),
    ("Anwar", "আনোয়ার"), ("Farhan", "ফারহান"), ("Habib", "হাবিব"),
    ("Kamal", "কামাল"), ("Mehboob", "মেহবুব"), ("Rakib", "রাকিব"),
    ("Samim", "সামিম"), ("Tanvir", "তানভীর"), ("Yusuf", "ইউসুফ"),
    ("Zakir", "জাকির"), ("Mainul", "মইনুল"), ("Saiful", "সাইফুল"),
    ("Rejaul", "রেজাউল"), ("Asif", "আসিফ"), ("Firoz", "ফিরোজ"),
)  # fmt: skip

MUSLIM_FEMALE: Final[tuple[NamePair, ...]] = (
    ("Ayesha", "আয়েশা"), ("Fatema", "ফাতেমা"), ("Nasrin", "নাসরিন"),
    ("Rehana", "রেহানা"), ("Salma", "সালমা"), ("Shabnam", "শবনম"),
    ("Tasleema", "তসলিমা"), ("Jasmin", "জেসমিন"), ("Rukhsana", "রুখসানা"),
    ("Sabina", "সাবিনা"), ("Mumtaz", "মমতাজ"), ("Nazma", "নাজমা"),
    ("Parveen", "পারভীন"), ("Rubina", "রুবিনা"), ("Sahana", "সাহানা"),
    ("Farzana", "ফারজানা"), ("Amina", "আমিনা"), ("Hasina", "হাসিনা"),
    ("Khadija", "খাদিজা"),
)  # fmt: skip

MUSLIM_SURNAMES: Final[tuple[NamePair, ...]] = (
    ("Sheikh", "শেখ"), ("Khan", "খান"), ("Mondal", "মণ্ডল"), ("Molla", "মোল্লা"),
    ("Ali", "আলি"), ("Hossain", "হোসেন"), ("Rahaman", "রহমান"),
    ("Ahmed", "আহমেদ"), ("Islam", "ইসলাম"), ("Biswas", "বিশ্বাস"),
    ("Haque", "হক"), ("Laskar", "লস্কর"), ("Mallick", "মল্লিক"),
    ("Gazi", "গাজী"), ("Sarkar", "সরকার"),
)  # fmt: skip

#: West Bengal's districts in UDISE order (code = position + 1), each with places
#: that serve as its blocks (block code = position + 1) and in school names.
DISTRICTS: Final[tuple[tuple[str, tuple[str, ...]], ...]] = (
    ("Darjeeling", ("Kurseong", "Mirik", "Matigara", "Naxalbari", "Phansidewa")),
    ("Jalpaiguri", ("Rajganj", "Maynaguri", "Dhupguri", "Mal", "Nagrakata")),
    ("Cooch Behar", ("Dinhata", "Tufanganj", "Mathabhanga", "Mekliganj", "Sitai")),
    ("Uttar Dinajpur", ("Raiganj", "Islampur", "Chopra", "Kaliaganj", "Hemtabad")),
    ("Dakshin Dinajpur", ("Balurghat", "Gangarampur", "Tapan", "Kushmandi", "Hili")),
    ("Malda", ("English Bazar", "Ratua", "Manikchak", "Habibpur", "Kaliachak")),
    ("Murshidabad", ("Berhampore", "Lalgola", "Domkal", "Jangipur", "Kandi")),
    ("Birbhum", ("Bolpur", "Suri", "Rampurhat", "Nalhati", "Dubrajpur")),
    ("Purba Bardhaman", ("Kalna", "Katwa", "Memari", "Bhatar", "Jamalpur")),
    ("Nadia", ("Krishnanagar", "Ranaghat", "Kalyani", "Chakdaha", "Tehatta")),
    ("North 24 Parganas", ("Barasat", "Basirhat", "Habra", "Bongaon", "Amdanga")),
    ("Hooghly", ("Chinsurah", "Arambagh", "Singur", "Tarakeswar", "Pandua")),
    ("Bankura", ("Bishnupur", "Khatra", "Sonamukhi", "Onda", "Chhatna")),
    ("Purulia", ("Raghunathpur", "Jhalda", "Manbazar", "Hura", "Balarampur")),
    ("Howrah", ("Uluberia", "Domjur", "Bagnan", "Amta", "Shyampur")),
    ("Kolkata", ("Behala", "Kasba", "Shyambazar", "Garden Reach", "Tollygunge")),
    ("South 24 Parganas", ("Baruipur", "Diamond Harbour", "Canning", "Kakdwip")),
    ("Paschim Medinipur", ("Kharagpur", "Ghatal", "Debra", "Garbeta", "Keshpur")),
    ("Purba Medinipur", ("Tamluk", "Contai", "Haldia", "Egra", "Panskura")),
    ("Alipurduar", ("Falakata", "Kalchini", "Kumargram", "Madarihat")),
    ("Kalimpong", ("Kalimpong", "Gorubathan", "Lava", "Pedong", "Algarah")),
    ("Jhargram", ("Gopiballavpur", "Binpur", "Nayagram", "Sankrail", "Jamboni")),
    ("Paschim Bardhaman", ("Asansol", "Durgapur", "Raniganj", "Jamuria", "Ondal")),
)


class SchoolKind:
    """A kind of school: the suffix of its name, its classes and who it admits."""

    __slots__ = ("classes", "girls_only", "private", "suffixes")

    def __init__(
        self,
        suffixes: tuple[str, ...],
        classes: tuple[int, int],
        *,
        girls_only: bool = False,
        private: bool = False,
    ) -> None:
        self.suffixes = suffixes
        self.classes = classes
        self.girls_only = girls_only
        self.private = private


PRIMARY: Final = SchoolKind(
    ("Primary School", "F.P. School", "Prathamik Vidyalaya"), (0, 4)
)
HIGHER_SECONDARY: Final = SchoolKind(
    ("High School (H.S.)", "Vidyalaya (H.S.)"), (5, 12)
)
#: Kinds after the first two schools, with their weights; the first two schools are
#: always a primary and a co-educational higher secondary school, so that every
#: class and gender has a school even in the smallest registry.
SCHOOL_KINDS: Final[tuple[tuple[SchoolKind, int], ...]] = (
    (PRIMARY, 50),
    (SchoolKind(("Junior High School",), (5, 8)), 12),
    (SchoolKind(("High School", "Vidyapith"), (5, 10)), 12),
    (HIGHER_SECONDARY, 12),
    (SchoolKind(("Girls' High School",), (5, 12), girls_only=True), 6),
    (SchoolKind(("Public School", "Model School"), (0, 12), private=True), 8),
)

SECONDARY_SUBJECTS: Final = (
    "Bengali", "English", "Mathematics", "Physical Science", "Life Science",
    "History", "Geography", "Sanskrit", "Physical Education", "Work Education",
    "Computer Science", "Arabic", "Political Science", "Economics",
)  # fmt: skip

IFSC_BANKS: Final = ("SBIN", "PUNB", "UBIN", "BKID", "UCBA", "CNRB", "BARB", "WBSC")
