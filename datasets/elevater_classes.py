"""Class names and metrics of the 20 ELEVATER image-classification tasks, as MVLPT prompts them.

Data from the ELEVATER toolkit's datasets/prompts.py (`class_map`, first name of each list entry;
CLIP's prompts.md names) and `class_map_metric`; class order = the tasks' label ids.
"""
from __future__ import annotations

CIFAR10 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

CIFAR100 = [
    "chimpanzee", "trout", "skunk", "spider", "chair", "tank", "keyboard", "man", "whale", "lobster",
    "house", "beetle", "bear", "shrew", "bottle", "cup", "bus", "orange", "sea", "oak tree", "bed",
    "tulip", "rabbit", "skyscraper", "apple", "maple tree", "pine tree", "snail", "pear", "bridge",
    "train", "mountain", "caterpillar", "crocodile", "snake", "kangaroo", "dolphin", "cattle",
    "raccoon", "mushroom", "hamster", "bowl", "lamp", "rocket", "pickup truck", "wolf", "worm",
    "otter", "sunflower", "leopard", "ray", "lawn mower", "motorcycle", "boy", "fox", "palm tree",
    "cloud", "dinosaur", "turtle", "forest", "couch", "poppy", "rose", "bee", "girl", "clock", "can",
    "table", "road", "orchid", "streetcar", "squirrel", "crab", "butterfly", "tractor", "beaver",
    "willow tree", "camel", "plain", "mouse", "elephant", "flatfish", "sweet pepper", "plate",
    "television", "aquarium fish", "wardrobe", "seal", "lizard", "cockroach", "porcupine", "woman",
    "possum", "baby", "tiger", "telephone", "shark", "lion", "castle", "bicycle",
]

CALTECH101 = [
    "accordion", "airplane", "anchor", "ant", "background", "barrel", "bass", "beaver", "binocular",
    "bonsai", "brain", "brontosaurus", "buddha", "butterfly", "camera", "cannon", "side of a car",
    "ceiling fan", "cellphone", "chair", "chandelier", "body of a cougar cat", "face of a cougar cat",
    "crab", "crayfish", "crocodile", "head of a  crocodile", "cup", "dalmatian", "dollar bill",
    "dolphin", "dragonfly", "electric guitar", "elephant", "emu", "euphonium", "ewer",
    "centered face", "off-center face", "ferry", "flamingo", "head of a flamingo", "garfield",
    "gerenuk", "gramophone", "grand piano", "hawksbill", "headphone", "hedgehog", "helicopter",
    "ibis", "inline skate", "joshua tree", "kangaroo", "ketch", "lamp", "laptop", "leopard", "llama",
    "lobster", "lotus", "mandolin", "mayfly", "menorah", "metronome", "minaret", "motorbike",
    "nautilus", "octopus", "okapi", "pagoda", "panda", "pigeon", "pizza", "platypus", "pyramid",
    "revolver", "rhino", "rooster", "saxophone", "schooner", "scissors", "scorpion", "sea horse",
    "snoopy (cartoon beagle)", "soccer ball", "stapler", "starfish", "stegosaurus", "stop sign",
    "strawberry", "sunflower", "tick", "trilobite", "umbrella", "watch", "water lilly", "wheelchair",
    "wild cat", "windsor chair", "wrench", "yin and yang symbol",
]

COUNTRY211 = [
    "Andorra", "United Arab Emirates", "Afghanistan", "Antigua and Barbuda", "Anguilla", "Albania",
    "Armenia", "Angola", "Antarctica", "Argentina", "Austria", "Australia", "Aruba", "Aland Islands",
    "Azerbaijan", "Bosnia and Herzegovina", "Barbados", "Bangladesh", "Belgium", "Burkina Faso",
    "Bulgaria", "Bahrain", "Benin", "Bermuda", "Brunei Darussalam", "Bolivia",
    "Bonaire, Saint Eustatius and Saba", "Brazil", "Bahamas", "Bhutan", "Botswana", "Belarus",
    "Belize", "Canada", "DR Congo", "Central African Republic", "Switzerland", "Cote d'Ivoire",
    "Cook Islands", "Chile", "Cameroon", "China", "Colombia", "Costa Rica", "Cuba", "Cabo Verde",
    "Curacao", "Cyprus", "Czech Republic", "Germany", "Denmark", "Dominica", "Dominican Republic",
    "Algeria", "Ecuador", "Estonia", "Egypt", "Spain", "Ethiopia", "Finland", "Fiji",
    "Falkland Islands", "Faeroe Islands", "France", "Gabon", "United Kingdom", "Grenada", "Georgia",
    "French Guiana", "Guernsey", "Ghana", "Gibraltar", "Greenland", "Gambia", "Guadeloupe", "Greece",
    "South Georgia and South Sandwich Is.", "Guatemala", "Guam", "Guyana", "Hong Kong", "Honduras",
    "Croatia", "Haiti", "Hungary", "Indonesia", "Ireland", "Israel", "Isle of Man", "India", "Iraq",
    "Iran", "Iceland", "Italy", "Jersey", "Jamaica", "Jordan", "Japan", "Kenya", "Kyrgyz Republic",
    "Cambodia", "St. Kitts and Nevis", "North Korea", "South Korea", "Kuwait", "Cayman Islands",
    "Kazakhstan", "Laos", "Lebanon", "St. Lucia", "Liechtenstein", "Sri Lanka", "Liberia",
    "Lithuania", "Luxembourg", "Latvia", "Libya", "Morocco", "Monaco", "Moldova", "Montenegro",
    "Saint-Martin", "Madagascar", "Macedonia", "Mali", "Myanmar", "Mongolia", "Macau", "Martinique",
    "Mauritania", "Malta", "Mauritius", "Maldives", "Malawi", "Mexico", "Malaysia", "Mozambique",
    "Namibia", "New Caledonia", "Nigeria", "Nicaragua", "Netherlands", "Norway", "Nepal",
    "New Zealand", "Oman", "Panama", "Peru", "French Polynesia", "Papua New Guinea", "Philippines",
    "Pakistan", "Poland", "Puerto Rico", "Palestine", "Portugal", "Palau", "Paraguay", "Qatar",
    "Reunion", "Romania", "Serbia", "Russia", "Rwanda", "Saudi Arabia", "Solomon Islands",
    "Seychelles", "Sudan", "Sweden", "Singapore", "St. Helena", "Slovenia",
    "Svalbard and Jan Mayen Islands", "Slovakia", "Sierra Leone", "San Marino", "Senegal", "Somalia",
    "South Sudan", "El Salvador", "Sint Maarten", "Syria", "Eswatini", "Togo", "Thailand",
    "Tajikistan", "Timor-Leste", "Turkmenistan", "Tunisia", "Tonga", "Turkey", "Trinidad and Tobago",
    "Taiwan", "Tanzania", "Ukraine", "Uganda", "United States", "Uruguay", "Uzbekistan", "Vatican",
    "Venezuela", "British Virgin Islands", "United States Virgin Islands", "Vietnam", "Vanuatu",
    "Samoa", "Kosovo", "Yemen", "South Africa", "Zambia", "Zimbabwe",
]

DTD = [
    "banded", "blotchy", "braided", "bubbly", "bumpy", "chequered", "cobwebbed", "cracked",
    "crosshatched", "crystalline", "dotted", "fibrous", "flecked", "freckled", "frilly", "gauzy",
    "grid", "grooved", "honeycombed", "interlaced", "knitted", "lacelike", "lined", "marbled",
    "matted", "meshed", "paisley", "perforated", "pitted", "pleated", "polka-dotted", "porous",
    "potholed", "scaly", "smeared", "spiralled", "sprinkled", "stained", "stratified", "striped",
    "studded", "swirly", "veined", "waffled", "woven", "wrinkled", "zigzagged",
]

EUROSAT = [
    "annual crop land", "forest", "brushland or shrubland", "highway or road",
    "industrial buildings or commercial buildings", "pasture land", "permanent crop land",
    "residential buildings or homes or apartments", "river", "lake or sea",
]

FGVC_AIRCRAFT = [
    "707-320", "727-200", "737-200", "737-300", "737-400", "737-500", "737-600", "737-700", "737-800",
    "737-900", "747-100", "747-200", "747-300", "747-400", "757-200", "757-300", "767-200", "767-300",
    "767-400", "777-200", "777-300", "A300B4", "A310", "A318", "A319", "A320", "A321", "A330-200",
    "A330-300", "A340-200", "A340-300", "A340-500", "A340-600", "A380", "An-12", "ATR-42", "ATR-72",
    "BAE 146-200", "BAE 146-300", "BAE-125", "Beechcraft 1900", "Boeing 717", "C-130", "C-47",
    "Cessna 172", "Cessna 208", "Cessna 525", "Cessna 560", "Challenger 600", "CRJ-200", "CRJ-700",
    "CRJ-900", "DC-10", "DC-3", "DC-6", "DC-8", "DC-9-30", "DH-82", "DHC-1", "DHC-6", "DHC-8-100",
    "DHC-8-300", "Dornier 328", "DR-400", "E-170", "E-190", "E-195", "EMB-120", "Embraer Legacy 600",
    "ERJ 135", "ERJ 145", "Eurofighter Typhoon", "F-16A-B", "F-A-18", "Falcon 2000", "Falcon 900",
    "Fokker 100", "Fokker 50", "Fokker 70", "Global Express", "Gulfstream IV", "Gulfstream V",
    "Hawk T1", "Il-76", "L-1011", "MD-11", "MD-80", "MD-87", "MD-90", "Metroliner", "Model B200",
    "PA-28", "Saab 2000", "Saab 340", "Spitfire", "SR-20", "Tornado", "Tu-134", "Tu-154", "Yak-42",
]

# fer-2013 lists several names per class; MVLPT takes the first.
FER2013 = ["angry", "disgusted", "fearful", "happy", "neutral", "sad", "surprised"]

FLOWERS102 = [
    "pink primrose", "hard-leaved pocket orchid", "canterbury bells", "sweet pea", "english marigold",
    "tiger lily", "moon orchid", "bird of paradise", "monkshood", "globe thistle", "snapdragon",
    "colt's foot", "king protea", "spear thistle", "yellow iris", "globe flower", "purple coneflower",
    "peruvian lily", "balloon flower", "giant white arum lily", "fire lily", "pincushion flower",
    "fritillary", "red ginger", "grape hyacinth", "corn poppy", "prince of wales feathers",
    "stemless gentian", "artichoke", "sweet william", "carnation", "garden phlox", "love in the mist",
    "mexican aster", "alpine sea holly", "ruby-lipped cattleya", "cape flower", "great masterwort",
    "siam tulip", "lenten rose", "barbeton daisy", "daffodil", "sword lily", "poinsettia",
    "bolero deep blue", "wallflower", "marigold", "buttercup", "oxeye daisy", "common dandelion",
    "petunia", "wild pansy", "primula", "sunflower", "pelargonium", "bishop of llandaff", "gaura",
    "geranium", "orange dahlia", "pink and yellow dahlia", "cautleya spicata", "japanese anemone",
    "black-eyed susan", "silverbush", "californian poppy", "osteospermum", "spring crocus",
    "bearded iris", "windflower", "tree poppy", "gazania", "azalea", "water lily", "rose",
    "thorn apple", "morning glory", "passion flower", "lotus", "toad lily", "anthurium",
    "frangipani", "clematis", "hibiscus", "columbine", "desert-rose", "tree mallow", "magnolia",
    "cyclamen", "watercress", "canna lily", "hippeastrum", "bee balm", "air plant", "foxglove",
    "bougainvillea", "camellia", "mallow", "mexican petunia", "bromelia", "blanket flower",
    "trumpet creeper", "blackberry lily",
]

FOOD101 = [
    "apple pie", "baby back ribs", "baklava", "beef carpaccio", "beef tartare", "beet salad",
    "beignets", "bibimbap", "bread pudding", "breakfast burrito", "bruschetta", "caesar salad",
    "cannoli", "caprese salad", "carrot cake", "ceviche", "cheesecake", "cheese plate",
    "chicken curry", "chicken quesadilla", "chicken wings", "chocolate cake", "chocolate mousse",
    "churros", "clam chowder", "club sandwich", "crab cakes", "creme brulee", "croque madame",
    "cup cakes", "deviled eggs", "donuts", "dumplings", "edamame", "eggs benedict", "escargots",
    "falafel", "filet mignon", "fish and chips", "foie gras", "french fries", "french onion soup",
    "french toast", "fried calamari", "fried rice", "frozen yogurt", "garlic bread", "gnocchi",
    "greek salad", "grilled cheese sandwich", "grilled salmon", "guacamole", "gyoza", "hamburger",
    "hot and sour soup", "hot dog", "huevos rancheros", "hummus", "ice cream", "lasagna",
    "lobster bisque", "lobster roll sandwich", "macaroni and cheese", "macarons", "miso soup",
    "mussels", "nachos", "omelette", "onion rings", "oysters", "pad thai", "paella", "pancakes",
    "panna cotta", "peking duck", "pho", "pizza", "pork chop", "poutine", "prime rib",
    "pulled pork sandwich", "ramen", "ravioli", "red velvet cake", "risotto", "samosa", "sashimi",
    "scallops", "seaweed salad", "shrimp and grits", "spaghetti bolognese", "spaghetti carbonara",
    "spring rolls", "steak", "strawberry shortcake", "sushi", "tacos", "takoyaki", "tiramisu",
    "tuna tartare", "waffles",
]

GTSRB = [
    "red and white circle 20 kph speed limit", "red and white circle 30 kph speed limit",
    "red and white circle 50 kph speed limit", "red and white circle 60 kph speed limit",
    "red and white circle 70 kph speed limit", "red and white circle 80 kph speed limit",
    "end / de-restriction of 80 kph speed limit", "red and white circle 100 kph speed limit",
    "red and white circle 120 kph speed limit", "red and white circle red car and black car no passing",
    "red and white circle red truck and black car no passing",
    "red and white triangle road intersection warning", "white and yellow diamond priority road",
    "red and white upside down triangle yield right-of-way", "stop", "empty red and white circle",
    "red and white circle no truck entry", "red circle with white horizonal stripe no entry",
    "red and white triangle with exclamation mark warning",
    "red and white triangle with black left curve approaching warning",
    "red and white triangle with black right curve approaching warning",
    "red and white triangle with black double curve approaching warning",
    "red and white triangle rough / bumpy road warning",
    "red and white triangle car skidding / slipping warning",
    "red and white triangle with merging / narrow lanes warning",
    "red and white triangle with person digging / construction / road work warning",
    "red and white triangle with traffic light approaching warning",
    "red and white triangle with person walking warning",
    "red and white triangle with child and person walking warning",
    "red and white triangle with bicyle warning", "red and white triangle with snowflake / ice warning",
    "red and white triangle with deer warning", "white circle with gray strike bar no speed limit",
    "blue circle with white right turn arrow mandatory", "blue circle with white left turn arrow mandatory",
    "blue circle with white forward arrow mandatory",
    "blue circle with white forward or right turn arrow mandatory",
    "blue circle with white forward or left turn arrow mandatory",
    "blue circle with white keep right arrow mandatory", "blue circle with white keep left arrow mandatory",
    "blue circle with white arrows indicating a traffic circle",
    "white circle with gray strike bar indicating no passing for cars has ended",
    "white circle with gray strike bar indicating no passing for trucks has ended",
]

HATEFUL_MEMES = ["meme", "hatespeech meme"]

KITTI_DISTANCE = [
    "a photo i took of a car on my left or right side.", "a photo i took with a car nearby.",
    "a photo i took with a car in the distance.", "a photo i took with no car.",
]

MNIST = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]

OXFORD_PETS = [
    "Abyssinian", "american bulldog", "american pit bull terrier", "basset hound", "beagle", "Bengal",
    "Birman", "Bombay", "boxer", "British Shorthair", "chihuahua", "Egyptian Mau",
    "english cocker spaniel", "english setter", "german shorthaired", "great pyrenees", "havanese",
    "japanese chin", "keeshond", "leonberger", "Maine Coon", "miniature pinscher", "newfoundland",
    "Persian", "pomeranian", "pug", "Ragdoll", "Russian Blue", "saint bernard", "samoyed",
    "scottish terrier", "shiba inu", "Siamese", "Sphynx", "staffordshire bull terrier",
    "wheaten terrier", "yorkshire terrier",
]

VOC2007 = [
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
    "tvmonitor",
]

PATCH_CAMELYON = ["lymph node", "lymph node containing metastatic tumor tissue"]

RESISC45 = [
    "airplane", "airport", "baseball diamond", "basketball court", "beach", "bridge", "chaparral",
    "church", "circular farmland", "cloud", "commercial area", "dense residential", "desert",
    "forest", "freeway", "golf course", "ground track field", "harbor", "industrial area",
    "intersection", "island", "lake", "meadow", "medium residential", "mobile home park", "mountain",
    "overpass", "palace", "parking lot", "railway", "railway station", "rectangular farmland",
    "river", "roundabout", "runway", "sea ice", "ship", "snowberg", "sparse residential", "stadium",
    "storage tank", "tennis court", "terrace", "thermal power station", "wetland",
]

SST2 = ["negative", "positive"]

STANFORD_CARS = [
    "Acura Integra Type R 2001", "Acura RL Sedan 2012", "Acura TL Sedan 2012", "Acura TL Type-S 2008",
    "Acura TSX Sedan 2012", "Acura ZDX Hatchback 2012", "AM General Hummer SUV 2000",
    "Aston Martin V8 Vantage Convertible 2012", "Aston Martin V8 Vantage Coupe 2012",
    "Aston Martin Virage Convertible 2012", "Aston Martin Virage Coupe 2012", "Audi 100 Sedan 1994",
    "Audi 100 Wagon 1994", "Audi A5 Coupe 2012", "Audi R8 Coupe 2012", "Audi RS 4 Convertible 2008",
    "Audi S4 Sedan 2007", "Audi S4 Sedan 2012", "Audi S5 Convertible 2012", "Audi S5 Coupe 2012",
    "Audi S6 Sedan 2011", "Audi TTS Coupe 2012", "Audi TT Hatchback 2011", "Audi TT RS Coupe 2012",
    "Audi V8 Sedan 1994", "Bentley Arnage Sedan 2009", "Bentley Continental Flying Spur Sedan 2007",
    "Bentley Continental GT Coupe 2007", "Bentley Continental GT Coupe 2012",
    "Bentley Continental Supersports Conv. Convertible 2012", "Bentley Mulsanne Sedan 2011",
    "BMW 1 Series Convertible 2012", "BMW 1 Series Coupe 2012", "BMW 3 Series Sedan 2012",
    "BMW 3 Series Wagon 2012", "BMW 6 Series Convertible 2007", "BMW ActiveHybrid 5 Sedan 2012",
    "BMW M3 Coupe 2012", "BMW M5 Sedan 2010", "BMW M6 Convertible 2010", "BMW X3 SUV 2012",
    "BMW X5 SUV 2007", "BMW X6 SUV 2012", "BMW Z4 Convertible 2012",
    "Bugatti Veyron 16.4 Convertible 2009", "Bugatti Veyron 16.4 Coupe 2009", "Buick Enclave SUV 2012",
    "Buick Rainier SUV 2007", "Buick Regal GS 2012", "Buick Verano Sedan 2012",
    "Cadillac CTS-V Sedan 2012", "Cadillac Escalade EXT Crew Cab 2007", "Cadillac SRX SUV 2012",
    "Chevrolet Avalanche Crew Cab 2012", "Chevrolet Camaro Convertible 2012", "Chevrolet Cobalt SS 2010",
    "Chevrolet Corvette Convertible 2012", "Chevrolet Corvette Ron Fellows Edition Z06 2007",
    "Chevrolet Corvette ZR1 2012", "Chevrolet Express Cargo Van 2007", "Chevrolet Express Van 2007",
    "Chevrolet HHR SS 2010", "Chevrolet Impala Sedan 2007", "Chevrolet Malibu Hybrid Sedan 2010",
    "Chevrolet Malibu Sedan 2007", "Chevrolet Monte Carlo Coupe 2007",
    "Chevrolet Silverado 1500 Classic Extended Cab 2007", "Chevrolet Silverado 1500 Extended Cab 2012",
    "Chevrolet Silverado 1500 Hybrid Crew Cab 2012", "Chevrolet Silverado 1500 Regular Cab 2012",
    "Chevrolet Silverado 2500HD Regular Cab 2012", "Chevrolet Sonic Sedan 2012",
    "Chevrolet Tahoe Hybrid SUV 2012", "Chevrolet TrailBlazer SS 2009", "Chevrolet Traverse SUV 2012",
    "Chrysler 300 SRT-8 2010", "Chrysler Aspen SUV 2009", "Chrysler Crossfire Convertible 2008",
    "Chrysler PT Cruiser Convertible 2008", "Chrysler Sebring Convertible 2010",
    "Chrysler Town and Country Minivan 2012", "Daewoo Nubira Wagon 2002", "Dodge Caliber Wagon 2007",
    "Dodge Caliber Wagon 2012", "Dodge Caravan Minivan 1997", "Dodge Challenger SRT8 2011",
    "Dodge Charger Sedan 2012", "Dodge Charger SRT-8 2009", "Dodge Dakota Club Cab 2007",
    "Dodge Dakota Crew Cab 2010", "Dodge Durango SUV 2007", "Dodge Durango SUV 2012",
    "Dodge Journey SUV 2012", "Dodge Magnum Wagon 2008", "Dodge Ram Pickup 3500 Crew Cab 2010",
    "Dodge Ram Pickup 3500 Quad Cab 2009", "Dodge Sprinter Cargo Van 2009", "Eagle Talon Hatchback 1998",
    "Ferrari 458 Italia Convertible 2012", "Ferrari 458 Italia Coupe 2012",
    "Ferrari California Convertible 2012", "Ferrari FF Coupe 2012", "FIAT 500 Abarth 2012",
    "FIAT 500 Convertible 2012", "Fisker Karma Sedan 2012", "Ford E-Series Wagon Van 2012",
    "Ford Edge SUV 2012", "Ford Expedition EL SUV 2009", "Ford F-150 Regular Cab 2007",
    "Ford F-150 Regular Cab 2012", "Ford F-450 Super Duty Crew Cab 2012", "Ford Fiesta Sedan 2012",
    "Ford Focus Sedan 2007", "Ford Freestar Minivan 2007", "Ford GT Coupe 2006",
    "Ford Mustang Convertible 2007", "Ford Ranger SuperCab 2011", "Geo Metro Convertible 1993",
    "GMC Acadia SUV 2012", "GMC Canyon Extended Cab 2012", "GMC Savana Van 2012", "GMC Terrain SUV 2012",
    "GMC Yukon Hybrid SUV 2012", "Honda Accord Coupe 2012", "Honda Accord Sedan 2012",
    "Honda Odyssey Minivan 2007", "Honda Odyssey Minivan 2012", "HUMMER H2 SUT Crew Cab 2009",
    "HUMMER H3T Crew Cab 2010", "Hyundai Accent Sedan 2012", "Hyundai Azera Sedan 2012",
    "Hyundai Elantra Sedan 2007", "Hyundai Elantra Touring Hatchback 2012", "Hyundai Genesis Sedan 2012",
    "Hyundai Santa Fe SUV 2012", "Hyundai Sonata Hybrid Sedan 2012", "Hyundai Sonata Sedan 2012",
    "Hyundai Tucson SUV 2012", "Hyundai Veloster Hatchback 2012", "Hyundai Veracruz SUV 2012",
    "Infiniti G Coupe IPL 2012", "Infiniti QX56 SUV 2011", "Isuzu Ascender SUV 2008", "Jaguar XK XKR 2012",
    "Jeep Compass SUV 2012", "Jeep Grand Cherokee SUV 2012", "Jeep Liberty SUV 2012",
    "Jeep Patriot SUV 2012", "Jeep Wrangler SUV 2012", "Lamborghini Aventador Coupe 2012",
    "Lamborghini Diablo Coupe 2001", "Lamborghini Gallardo LP 570-4 Superleggera 2012",
    "Lamborghini Reventon Coupe 2008", "Land Rover LR2 SUV 2012", "Land Rover Range Rover SUV 2012",
    "Lincoln Town Car Sedan 2011", "Maybach Landaulet Convertible 2012", "Mazda Tribute SUV 2011",
    "McLaren MP4-12C Coupe 2012", "Mercedes-Benz 300-Class Convertible 1993",
    "Mercedes-Benz C-Class Sedan 2012", "Mercedes-Benz E-Class Sedan 2012",
    "Mercedes-Benz S-Class Sedan 2012", "Mercedes-Benz SL-Class Coupe 2009",
    "Mercedes-Benz Sprinter Van 2012", "MINI Cooper Roadster Convertible 2012",
    "Mitsubishi Lancer Sedan 2012", "Nissan 240SX Coupe 1998", "Nissan Juke Hatchback 2012",
    "Nissan Leaf Hatchback 2012", "Nissan NV Passenger Van 2012", "Plymouth Neon Coupe 1999",
    "Porsche Panamera Sedan 2012", "Ram C V Cargo Van Minivan 2012", "Rolls-Royce Ghost Sedan 2012",
    "Rolls-Royce Phantom Drophead Coupe Convertible 2012", "Rolls-Royce Phantom Sedan 2012",
    "Scion xD Hatchback 2012", "smart fortwo Convertible 2012", "Spyker C8 Convertible 2009",
    "Spyker C8 Coupe 2009", "Suzuki Aerio Sedan 2007", "Suzuki Kizashi Sedan 2012",
    "Suzuki SX4 Hatchback 2012", "Suzuki SX4 Sedan 2012", "Tesla Model S Sedan 2012",
    "Toyota 4Runner SUV 2012", "Toyota Camry Sedan 2012", "Toyota Corolla Sedan 2012",
    "Toyota Sequoia SUV 2012", "Volkswagen Beetle Hatchback 2012", "Volkswagen Golf Hatchback 1991",
    "Volkswagen Golf Hatchback 2012", "Volvo 240 Sedan 1993", "Volvo C30 Hatchback 2012",
    "Volvo XC90 SUV 2007",
]

# task name -> (class names, metric)
CLASSES_AND_METRICS = {
    "hateful-memes": (HATEFUL_MEMES, "accuracy"),  # roc_auc in the ELEVATER paper, accuracy since 218e6a6
    "cifar-10": (CIFAR10, "accuracy"),
    "mnist": (MNIST, "accuracy"),
    "oxford-flower-102": (FLOWERS102, "mean-per-class"),
    "oxford-iiit-pets": (OXFORD_PETS, "mean-per-class"),
    "resisc45_clip": (RESISC45, "accuracy"),
    "country211": (COUNTRY211, "accuracy"),
    "food-101": (FOOD101, "accuracy"),
    "stanford-cars": (STANFORD_CARS, "accuracy"),
    "fer-2013": (FER2013, "accuracy"),
    "caltech-101": (CALTECH101, "mean-per-class"),
    "dtd": (DTD, "accuracy"),
    "voc-2007-classification": (VOC2007, "11point_mAP"),
    "cifar-100": (CIFAR100, "accuracy"),
    "fgvc-aircraft-2013b-variants102": (FGVC_AIRCRAFT, "mean-per-class"),
    "patch-camelyon": (PATCH_CAMELYON, "accuracy"),
    "rendered-sst2": (SST2, "accuracy"),
    "gtsrb": (GTSRB, "accuracy"),
    "eurosat_clip": (EUROSAT, "accuracy"),
    "kitti-distance": (KITTI_DISTANCE, "accuracy"),
}
